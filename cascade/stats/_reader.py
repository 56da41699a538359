"""Stream ``attempt`` and ``request`` events out of JSONL logs (plain or gzip), checked against the schema.

Reading is :mod:`cascade._logs._read`'s (one line at a time, never failing on a bad line); on top, an
event with a field of the wrong type is reported as a :class:`BadLine` (file, line number, why) and
skipped; the rest of the file is still read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._events import Event
from .._logs._read import BadLine, LogFileError, iter_lines

__all__ = ["BadLine", "Event", "LogFileError", "check_files", "read_events"]

ATTEMPT_OUTCOMES = frozenset({"accepted", "escalated", "reask", "error", "skipped"})
REQUEST_OUTCOMES = frozenset({"accepted", "exhausted", "error"})
_NUMBERS = (
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_ms",
    "calls",
    "retries",
    "attempts",
    "escalations",
)


def check_files(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The paths as strings, or :class:`LogFileError` naming the first one that cannot be read."""
    out = []
    for p in paths:
        path = os.fspath(p)
        if not os.path.exists(path):
            raise LogFileError(f"log file not found: {path}")
        if os.path.isdir(path):
            raise LogFileError(f"log path is a directory, expected a JSONL file: {path}")
        if not os.access(path, os.R_OK):
            raise LogFileError(f"log file is not readable: {path}")
        out.append(path)
    return out


def read_events(
    paths: Iterable[str],
    on_bad: Callable[[BadLine], None],
    on_other: Callable[[Event], None] | None = None,
) -> Iterator[Event]:
    """Yield valid ``attempt`` and ``request`` events from each file in turn.

    Events of another ``event`` kind (a later schema may add some) go to ``on_other`` if given.
    """
    for path in paths:
        for lineno, event in iter_lines(path, on_bad):
            kind = event["event"]
            if kind not in ("attempt", "request"):
                if on_other is not None:
                    on_other(event)
                continue
            error = _check(event, kind)
            if error is None:
                yield event
            else:
                on_bad(BadLine(path, lineno, error))


def _check(e: Event, kind: str) -> str | None:
    ts = e.get("ts")
    if not _is_number(ts):
        return f"{kind} event: field 'ts' must be unix seconds, got {ts!r}"
    rid = e.get("request_id")
    if not isinstance(rid, str) or not rid:
        return f"{kind} event: field 'request_id' must be a non-empty string, got {rid!r}"
    outcome = e.get("outcome")
    allowed = ATTEMPT_OUTCOMES if kind == "attempt" else REQUEST_OUTCOMES
    if outcome not in allowed:
        return f"{kind} event: field 'outcome' must be one of {sorted(allowed)}, got {outcome!r}"
    if kind == "attempt":
        rung = e.get("rung")
        if not isinstance(rung, str) or not rung:
            return f"attempt event: field 'rung' must be a non-empty string, got {rung!r}"
        reasons = e.get("reasons")
        if reasons is not None and not (isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)):
            return f"attempt event: field 'reasons' must be a list of strings, got {reasons!r}"
    else:
        top = e.get("top_rung")
        if top is not None and not (
            isinstance(top, dict) and _is_number(top.get("price_in")) and _is_number(top.get("price_out"))
        ):
            return f"request event: field 'top_rung' must be {{name, model, price_in, price_out}}, got {top!r}"
        answered = e.get("answered_by")
        if answered is not None and not isinstance(answered, str):
            return f"request event: field 'answered_by' must be a string or null, got {answered!r}"
    for name in _NUMBERS:
        v = e.get(name)
        if v is not None and not (_is_number(v) and v >= 0):
            return f"{kind} event: field {name!r} must be a non-negative number, got {v!r}"
    meta = e.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return f"{kind} event: field 'metadata' must be an object, got {meta!r}"
    return None


def _is_number(v: Any) -> bool:
    """int or float (not bool); JSON numbers are always finite here (NaN/Infinity are refused)."""
    t = type(v)
    return t is int or t is float
