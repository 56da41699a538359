"""Read the logs (once, or twice when a window or a time axis is needed) and build the stats report."""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._aggregate import Stats
from ._attribution import explain
from ._drift import Thresholds, Window, compare
from ._reader import BadLine, Event, check_files, read_events
from ._slices import By
from ._timeline import Timeline

SCHEMA = "cascade.stats/1"
MAX_BAD_SAMPLES = 100


def parse_time(text: str, flag: str) -> float:
    """Unix seconds (``1764115200``), ISO-8601 (``2026-11-26T02:00:00Z``; no zone means UTC) or ``now``."""
    if text.strip().lower() == "now":
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{flag}: expected unix seconds or an ISO-8601 time such as 2026-11-26T02:00:00Z, got {text!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


@dataclass
class Report:
    data: dict[str, Any]


class _Bad:
    def __init__(self) -> None:
        self.count = 0
        self.samples: list[dict[str, Any]] = []

    def __call__(self, bad: BadLine) -> None:
        self.count += 1
        if len(self.samples) < MAX_BAD_SAMPLES:
            self.samples.append(dict(bad.as_dict()))


def _in_range(ts: float, since: float | None, until: float | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def build_report(
    paths: Sequence[str],
    *,
    since: float | None = None,
    until: float | None = None,
    by: By | None = None,
    group_by: str | None = None,
    by_model: bool = False,
    window: Window | None = None,
    thresholds: Thresholds | None = None,
    series: bool = False,
) -> Report:
    """The full report; raises ``LogFileError`` for a file that cannot be opened. ``series`` adds the
    ``timeline`` (escalation rate over time per rung, for the plot and the HTML report) and, with ``by``,
    ``timeline_by`` (the same per ``by`` slice). ``group_by`` (a metadata
    key) and ``by_model`` are the older spelling of ``by``."""
    if by is None:
        by = By(tuple(([f"metadata.{group_by}"] if group_by else []) + (["model"] if by_model else [])))
    files = check_files(paths)
    bounds: tuple[float, float] | None = None
    cut: tuple[float, float, float] | None = None  # (previous start, current start, end)
    if window is not None and window.kind == "time" and until is not None and not series:
        cut = (until - 2 * window.size, until - window.size, until)  # known without a first pass
    elif window is not None or series:
        bounds, cut = _scan(files, since, until, window)

    stats = Stats(by)
    prev = Stats(by) if cut else None
    cur = Stats(by) if cut else None
    plot = Timeline(bounds[0], bounds[1]) if series and bounds else None
    plot_by = Timeline(bounds[0], bounds[1], by) if series and bounds and by.dims and by.dims != ("rung",) else None
    bad = _Bad()
    other = 0

    def on_other(_e: Event) -> None:
        nonlocal other
        other += 1

    for e in read_events(files, bad, on_other):
        ts = float(e["ts"])
        if not _in_range(ts, since, until):
            continue
        stats.add(e)
        if plot is not None:
            plot.add(e)
        if plot_by is not None:
            plot_by.add(e)
        if cut is not None and prev is not None and cur is not None:
            if cut[1] < ts <= cut[2]:
                cur.add(e)
            elif cut[0] < ts <= cut[1]:
                prev.add(e)

    data: dict[str, Any] = {
        "schema": SCHEMA,
        "files": list(files),
        "since": since,
        "until": until,
        "empty": stats.total.requests == 0 and stats.attempt_events == 0,
    }
    data.update(stats.as_dict())
    data["other_events"] = other
    data["bad_lines"] = {"count": bad.count, "samples": bad.samples}
    data["compare"] = None
    if series:
        data["timeline"] = plot.build() if plot is not None else None
        data["timeline_by"] = plot_by.build() if plot_by is not None else None
    if window is not None:
        th = thresholds or Thresholds()
        findings = compare(prev, cur, th) if prev is not None and cur is not None else []
        data["compare"] = {
            "window": window.text,
            "kind": window.kind,
            "previous": _window_info(prev, cut[0], cut[1]) if prev is not None and cut else None,
            "current": _window_info(cur, cut[1], cut[2]) if cur is not None and cut else None,
            "thresholds": th.__dict__.copy(),
            "findings": findings,
            "explanations": explain(prev, cur, th) if prev is not None and cur is not None else [],
            "drifted": any(f["flagged"] for f in findings),
        }
    return Report(data)


def _window_info(s: Stats, start: float, end: float) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "requests": s.total.requests,
        "attempts": s.attempt_events,
        "escalated_rate": None if s.total.requests == 0 else round(s.total.escalated_requests / s.total.requests, 6),
        "cost_usd": round(s.total.cost, 9),
    }


def _scan(
    files: Sequence[str], since: float | None, until: float | None, window: Window | None
) -> tuple[tuple[float, float] | None, tuple[float, float, float] | None]:
    """First pass: the time span, and the comparison windows as ``(a, b, c)``: previous ``(a, b]``,
    current ``(b, c]``.

    A time window ends at ``--until`` when given, else at the last event. A window of N requests starts
    just after the request event of the (N+1)-th latest request, so the attempts logged before the
    N-th latest request's own event fall in the same window as it (exact for sequential logs).
    """
    lo, hi = math.inf, -math.inf
    keep = 2 * int(window.size) + 1 if window is not None and window.kind == "requests" else 0
    latest: list[float] = []  # min-heap of the ``keep`` latest request times
    for e in read_events(files, lambda _b: None):
        ts = float(e["ts"])
        if not _in_range(ts, since, until):
            continue
        lo, hi = min(lo, ts), max(hi, ts)
        if keep and e["event"] == "request":
            if len(latest) < keep:
                heapq.heappush(latest, ts)
            elif ts > latest[0]:
                heapq.heapreplace(latest, ts)
    if lo > hi:
        return None, None
    bounds = (lo, hi)
    if window is None:
        return bounds, None
    if window.kind == "time":
        end = until if until is not None else hi
        return bounds, (end - 2 * window.size, end - window.size, end)
    ordered = sorted(latest, reverse=True)
    n = int(window.size)
    before = lo - 1.0
    cur_start = ordered[n] if len(ordered) > n else before
    prev_start = ordered[2 * n] if len(ordered) > 2 * n else before
    return bounds, (prev_start, cur_start, hi)
