"""``cascade stats``: read escalation logs and report costs, escalations, latency and drift."""

from ._aggregate import BASELINE_METHOD, Stats
from ._drift import Thresholds, Window, parse_window
from ._histogram import LogHistogram
from ._reader import BadLine, LogFileError, read_events
from ._report import SCHEMA, Report, build_report, parse_time
from ._slices import By, parse_by

__all__ = [
    "BASELINE_METHOD",
    "SCHEMA",
    "BadLine",
    "By",
    "LogFileError",
    "LogHistogram",
    "Report",
    "Stats",
    "Thresholds",
    "Window",
    "build_report",
    "parse_by",
    "parse_time",
    "parse_window",
    "read_events",
]
