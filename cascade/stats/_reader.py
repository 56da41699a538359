"""Stream events out of JSONL logs (plain or gzip), one line at a time, never failing on a bad line.

A line that is not JSON, not an object, not a cascade event or has a field of the wrong type is
reported as a :class:`BadLine` (file, line number, why) and skipped; the rest of the file is still read.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

Event = dict[str, Any]

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


class LogFileError(Exception):
    """A log file that cannot be opened at all (missing, a directory, unreadable)."""


@dataclass(frozen=True)
class BadLine:
    file: str
    line: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "error": self.error}


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


def _open(path: str) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def read_events(
    paths: Iterable[str],
    on_bad: Callable[[BadLine], None],
    on_other: Callable[[Event], None] | None = None,
) -> Iterator[Event]:
    """Yield valid ``attempt`` and ``request`` events from each file in turn.

    Events of another ``event`` kind (a later schema may add some) go to ``on_other`` if given.
    """
    for path in paths:
        lineno = 0
        try:
            with _open(path) as f:
                for lineno, raw in enumerate(f, start=1):
                    if not raw.strip():
                        continue
                    event, error = parse_line(raw)
                    if error is not None:
                        on_bad(BadLine(path, lineno, error))
                    elif event is not None:
                        if event["event"] in ("attempt", "request"):
                            yield event
                        elif on_other is not None:
                            on_other(event)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            on_bad(BadLine(path, lineno + 1, f"truncated or corrupt gzip stream: {exc}"))
        except OSError as exc:
            raise LogFileError(f"cannot read log file {path}: {exc}") from None


def parse_line(raw: bytes) -> tuple[Event | None, str | None]:
    """``(event, None)`` for a usable line, ``(None, reason)`` for a bad one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    try:
        obj = _DECODER.decode(text)
    except ValueError as exc:
        snippet = text.strip()[:60]
        return None, f"not valid JSON ({exc}); line starts {snippet!r}"
    if not isinstance(obj, dict):
        return None, f"not a JSON object: {type(obj).__name__}"
    kind = obj.get("event")
    if not isinstance(kind, str):
        return None, f"not a cascade event: field 'event' is {kind!r}"
    if kind not in ("attempt", "request"):
        return obj, None
    error = _check(obj, kind)
    return (None, error) if error else (obj, None)


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
