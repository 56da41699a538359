"""Where events go: small sinks behind one protocol, fed through structlog-style processors.

A sink receives finished events (plain dicts, see ``cascade._events``) and must not lose one it returned
from. ``make_sink`` turns what users pass as ``log=`` into a sink.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

from ._errors import ConfigError
from ._events import Event

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]
"""A structlog processor: ``(logger, method_name, event_dict) -> event_dict``."""


@runtime_checkable
class EventSink(Protocol):
    """Where finished events go. ``emit`` must not lose an event it returned from."""

    def emit(self, event: Event) -> None: ...


def add_timestamp(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Stamp the event with unix time (seconds, float) unless it already has one."""
    event.setdefault("ts", time.time())
    return event


_encode = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode
"""One encoder for all lines (``json.dumps`` with options builds a new one per call)."""


class JsonlSink:
    """Append-only JSON Lines file: one complete object per line, flushed per event, owner-only (0600).

    One ``write`` of a whole line under a lock, so concurrent emitters (threads, tasks) never interleave
    or leave a partial line. Values that are not JSON are written with ``str``. ``close`` releases the
    file; an event emitted after it (another thread's request still finishing) reopens it, so no line
    is lost to a close that came too early.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fsync = fsync
        self._file = self._open()

    def _open(self) -> TextIO:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        # A crash tore the last line: our first line starts on a fresh one (done at the first write, so
        # a reader of the file until then still sees the tear as a tear).
        self._newline_first = _ends_torn(fd)
        return os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        line = _encode(event) + "\n"
        with self._lock:
            if self._file.closed:
                self._file = self._open()
            if self._newline_first:
                line, self._newline_first = "\n" + line, False
            self._file.write(line)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


class MemorySink:
    """Keeps events in a list: for tests and for callers that read events in-process."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == kind]


class StructlogSink:
    """Hands each event to a structlog logger (``logger.info(event_name, **fields)``)."""

    def __init__(self, logger: Any = None) -> None:
        import structlog

        self.logger = logger if logger is not None else structlog.get_logger("cascade")

    def emit(self, event: Event) -> None:
        fields = dict(event)
        name = fields.pop("event", "cascade")
        self.logger.info(name, **fields)


class MultiSink:
    """Fans one event out to several sinks."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for s in self.sinks:
            s.emit(event)


def make_sink(log: str | os.PathLike[str] | EventSink | Iterable[Any] | None) -> EventSink | None:
    """``log=`` as users give it: a path (JSONL), a sink, a structlog logger, or a list of these."""
    if log is None:
        return None
    if isinstance(log, (str, os.PathLike)):
        return JsonlSink(log)
    if isinstance(log, EventSink):
        return log
    if callable(getattr(log, "info", None)):
        return StructlogSink(log)
    if isinstance(log, Iterable):
        return MultiSink(s for item in log if (s := make_sink(item)) is not None)
    raise ConfigError(f"log: expected a file path, an EventSink or a structlog logger, got {log!r}")


class EventLog:
    """Runs events through the processors and into the sink. Owned by one Cascade."""

    def __init__(self, sink: EventSink | None, processors: Iterable[Processor] = (add_timestamp,)) -> None:
        self.sink = sink
        self.processors = list(processors)

    def emit(self, event: Mapping[str, Any]) -> None:
        """Run one event (a typed event of ``cascade._events`` or a plain dict) into the sink."""
        if self.sink is None:
            return
        out: MutableMapping[str, Any] = dict(event)
        for p in self.processors:
            out = p(None, "info", out)
        self.sink.emit(out if type(out) is dict else dict(out))

    def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()
