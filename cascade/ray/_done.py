"""Which rows the job's logs already answered: every worker's JSONL log in one directory, read as one.

A row is done when a ``request`` event with its request id ended there (the rule of ``resume_from``:
accepted, exhausted, or an error other than a cancellation). :meth:`DoneRows.refresh` reads only the
lines written since the last look, and only whole lines (another worker may be writing the last one),
so a worker can look again before each batch: a batch that Ray retries after a crash then skips the
rows the dead worker had finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._logs._files import log_files
from .._logs._read import MAX_LINE_BYTES, BadLine, iter_lines, parse_line
from .._logs._resume import _finished, _rebuild
from .._result import CascadeResult


class DoneRows:
    """The finished requests of every log in ``directory`` (missing: none yet), kept current cheaply."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.done: dict[str, CascadeResult] = {}
        self.repeats = 0
        """Request events for a request id already done (a row answered twice: in flight at a crash)."""
        self.bad_lines: list[BadLine] = []
        self._offsets: dict[Path, int] = {}
        self._attempts: dict[tuple[Path, str], list[dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self.done)

    def get(self, request_id: str) -> CascadeResult | None:
        return self.done.get(request_id)

    def refresh(self) -> None:
        """Read what was added to the directory's logs since the last call."""
        for path in log_files(self.directory):
            if path.suffix == ".gz":
                if path not in self._offsets:  # a finished, compressed log: read once, whole
                    self._offsets[path] = -1
                    for _, event in iter_lines(path, self.bad_lines.append):
                        self._add(path, event)
            else:
                for event in self._new_lines(path):
                    self._add(path, event)

    def _new_lines(self, path: Path) -> Iterator[dict[str, Any]]:
        offset = self._offsets.get(path, 0)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below; a file may vanish between listing and open
        except FileNotFoundError:
            return
        with f:
            f.seek(offset)
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw.endswith(b"\n"):  # end of file, or a line still being written: next time
                    break
                offset += len(raw)
                if not raw.strip():
                    continue
                event, error = parse_line(raw)
                if event is None:
                    self.bad_lines.append(BadLine(str(path), 0, error))
                else:
                    yield event
        self._offsets[path] = offset

    def _add(self, path: Path, event: dict[str, Any]) -> None:
        rid = event.get("request_id")
        if not isinstance(rid, str):
            return
        kind = event["event"]
        if kind == "attempt":
            self._attempts.setdefault((path, rid), []).append(event)
        elif kind == "request":
            attempts = self._attempts.pop((path, rid), [])
            if not _finished(event):
                return
            if rid in self.done:
                self.repeats += 1
            else:
                self.done[rid] = _rebuild(event, attempts)
