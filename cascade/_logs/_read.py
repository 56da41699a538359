"""Reading escalation logs back: the one reader under ``cascade stats`` and batch resume.

Tolerant of what a crash leaves behind and data only: each line is parsed with ``json.loads`` (no
pickle, no eval); a line that is not one JSON object with an ``event`` field is skipped and reported as
a :class:`BadLine` (``torn=True`` for a last line without its newline), never raised. Plain or gzip
files; memory is bounded by the longest line, not the file.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from .._events import BadLineRecord, Event

MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longer lines are skipped as bad without being parsed (a log line is a few KB; 64 MB is corruption)."""


class LogFileError(Exception):
    """A log file that cannot be opened or read at all (missing, a directory, unreadable)."""


@dataclass(frozen=True)
class BadLine:
    """A line that was skipped: where (1-based line number), why, and whether it is a torn last line."""

    file: str
    line: int
    error: str
    torn: bool = False

    def as_dict(self) -> BadLineRecord:
        return {"file": self.file, "line": self.line, "error": self.error, "torn": self.torn}


@dataclass
class LogRead:
    """Everything readable in a log, and an account of what was not."""

    events: list[Event] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a warning: how many lines were skipped and the first few line numbers."""
        shown = ", ".join(f"line {b.line}: {b.error}" for b in self.bad_lines[:3])
        more = f" (+{len(self.bad_lines) - 3} more)" if len(self.bad_lines) > 3 else ""
        return f"{len(self.bad_lines)} unreadable line(s) skipped: {shown}{more}"


def open_log(path: str) -> IO[bytes]:
    """A log file for binary reading, gunzipped when it starts with gzip's magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def iter_lines(path: str | os.PathLike[str], on_bad: Callable[[BadLine], None]) -> Iterator[tuple[int, Event]]:
    """Yield ``(line number, event)`` for each readable line of ``path``; the rest go to ``on_bad``.

    Raises :class:`LogFileError` only when the file itself cannot be read."""
    name = os.fspath(path)
    lineno = 0
    try:
        with open_log(name) as f:
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                lineno += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the over-long line
                        raw = f.readline(MAX_LINE_BYTES)
                    on_bad(BadLine(name, lineno, f"longer than {MAX_LINE_BYTES} bytes"))
                    continue
                if not raw.strip():
                    continue
                event, error = parse_line(raw)
                if event is not None:
                    yield lineno, event
                elif not raw.endswith(b"\n"):
                    on_bad(BadLine(name, lineno, f"torn last line (no newline): {error}", torn=True))
                else:
                    on_bad(BadLine(name, lineno, error))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        on_bad(BadLine(name, lineno + 1, f"truncated or corrupt gzip stream: {exc}"))
    except OSError as exc:
        raise LogFileError(f"cannot read log file {name}: {exc}") from None


def log_files(path: str) -> list[str]:
    """``path`` and, before it, the files an external rotation renamed it to (``log.jsonl.1``,
    ``log.jsonl.2.gz``, ``log.jsonl-20261201``...), oldest first."""
    folder, base = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return [path] if os.path.exists(path) else []
    rotated = [os.path.join(folder, n) for n in names if n != base and n.startswith((base + ".", base + "-"))]
    rotated = [p for p in rotated if os.path.isfile(p)]
    rotated.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
    return rotated + ([path] if os.path.exists(path) else [])


def read_log(path: str | os.PathLike[str]) -> LogRead:
    """All readable events of ``path`` and the lines that were skipped."""
    out = LogRead()
    out.events = [event for _, event in iter_lines(path, out.bad_lines.append)]
    return out


def parse_line(raw: bytes) -> tuple[Event | None, str]:
    """One log line as an event, or None and why not. NaN and Infinity are refused (not JSON)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    try:
        value = _DECODER.decode(text.strip())
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    except ValueError as exc:
        return None, f"not valid JSON ({exc}); line starts {text.strip()[:60]!r}"
    if not isinstance(value, dict):
        return None, f"not a JSON object: {type(value).__name__}"
    kind = value.get("event")
    if not isinstance(kind, str):
        return None, f"not a cascade event: field 'event' is {kind!r}"
    return value, ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
