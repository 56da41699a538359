"""``cascade stats``: read escalation logs and report costs, escalations, latency and drift."""

from ._aggregate import BASELINE_METHOD, Stats
from ._drift import Thresholds, Window, parse_window
from ._histogram import LogHistogram
from ._reader import BadLine, LogFileError, read_events
from ._report import SCHEMA, Report, build_report, parse_time

__all__ = [
    "BASELINE_METHOD",
    "SCHEMA",
    "BadLine",
    "LogFileError",
    "LogHistogram",
    "Report",
    "Stats",
    "Thresholds",
    "Window",
    "build_report",
    "parse_time",
    "parse_window",
    "read_events",
]
