"""Reading an escalation log back: tolerant of what a crash leaves behind, and data only.

A process killed mid-write can leave a torn last line; a disk or an editor can leave worse. Each line
is parsed with ``json.loads`` (nothing else: no pickle, no eval); a line that is not one JSON object is
skipped and reported as a :class:`BadLine` (``torn=True`` for a last line without its newline),
never raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longer lines are skipped as bad without being parsed (a log line is a few KB; 64 MB is corruption)."""


@dataclass(frozen=True)
class BadLine:
    """A line that was skipped: its 1-based number, why, and whether it is a torn (unterminated) last line."""

    lineno: int
    reason: str
    torn: bool = False


@dataclass
class LogRead:
    """Everything readable in a log, and an account of what was not."""

    events: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a warning: how many lines were skipped and the first few line numbers."""
        shown = ", ".join(f"line {b.lineno}: {b.reason}" for b in self.bad_lines[:3])
        more = f" (+{len(self.bad_lines) - 3} more)" if len(self.bad_lines) > 3 else ""
        return f"{len(self.bad_lines)} unreadable line(s) skipped: {shown}{more}"


def iter_events(path: str | os.PathLike[str], bad: list[BadLine] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each JSON-object line of ``path`` in order; unreadable lines go to ``bad`` (when given).
    Memory is bounded by the longest line, not the file."""
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the over-long line
                    raw = f.readline(MAX_LINE_BYTES)
                _note(bad, BadLine(lineno, f"longer than {MAX_LINE_BYTES} bytes"))
                continue
            torn = not raw.endswith(b"\n")
            if not raw.strip():
                continue
            event, reason = parse_line(raw)
            if event is not None:
                yield event
            else:
                _note(bad, BadLine(lineno, "torn last line (no newline): " + reason if torn else reason, torn))


def read_log(path: str | os.PathLike[str]) -> LogRead:
    """All readable events of ``path`` and the lines that were skipped."""
    out = LogRead()
    out.events = list(iter_events(path, out.bad_lines))
    return out


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """One log line as an event, or None and why not."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (ValueError, RecursionError):
        return None, "not JSON"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an object"
    if not isinstance(value.get("event"), str):
        return None, "no 'event' field"
    return value, ""


def _note(bad: list[BadLine] | None, line: BadLine) -> None:
    if bad is not None:
        bad.append(line)
