"""Escalation events: plain dicts, passed through small processors, written by sinks (as in structlog).

Every request produces one ``attempt`` event per attempt and then exactly one ``request`` event.
Schema version 1 (stable; readers such as ``cascade stats`` rely on it):

attempt: ``event="attempt"``, ``v``, ``ts`` (unix seconds), ``request_id``, ``attempt`` (0-based index),
  ``rung``, ``rung_index``, ``model``, ``outcome`` (``accepted`` | ``escalated`` | ``reask`` | ``error`` |
  ``skipped``), ``reasons`` (list of reason codes), ``verdicts`` (list of ``{validator, passed, reason,
  score, detail}``), ``tokens_in``, ``tokens_out``, ``cost_usd``, ``latency_ms``, ``calls`` (HTTP calls
  made: first try, retries, samples, extra asks), ``retries``, ``price_in``, ``price_out`` (USD / 1M
  tokens), ``error`` (null or ``{kind, reason, status, message}``), ``metadata``; with content logging,
  ``output`` (full) or ``output_hash`` (HMAC-SHA256 hex).
request: ``event="request"``, ``v``, ``ts``, ``request_id``, ``outcome`` (``accepted`` | ``exhausted`` |
  ``error``), ``accepted``, ``answered_by`` (rung name or null), ``escalations``, ``attempts``,
  ``tokens_in``, ``tokens_out``, ``cost_usd``, ``latency_ms``, ``reason`` (the last failure's reason or
  null), ``budget_usd`` (or null), ``top_rung`` (``{name, model, price_in, price_out}``), ``rungs``
  (names, cheapest first), ``metadata``; with content logging, ``prompt``/``output`` or their hashes.
breaker: ``event="breaker"``, ``v``, ``ts``, ``rung``, ``from``, ``to`` (``closed`` | ``open`` |
  ``half_open``), ``reason`` (the failure that opened it, ``cooldown_elapsed`` or ``probe_succeeded``),
  ``failures``, ``cooldown_s``. While a rung's circuit is open its attempts are ``skipped`` with reason
  ``rung_cooling_down`` (no call made).
resume: ``event="resume"``, ``v``, ``ts``, ``path``, ``done`` (requests found finished), ``bad_lines``
  (``[{lineno, reason, torn}]``): written when ``map(..., resume_from=...)`` starts.
Readers must ignore event kinds they do not know, and skip (and report) lines that are not JSON objects:
a crash can tear the last line (``cascade._logread``). A sink opened on a torn file starts a new line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, runtime_checkable

from ._errors import ConfigError

SCHEMA_VERSION = 1
Event = dict[str, Any]
Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]
"""A structlog processor: ``(logger, method_name, event_dict) -> event_dict``."""
LogContent = Literal["none", "hash", "full"]


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


class ContentPolicy:
    """Decides what of prompts and outputs reaches the log: nothing, a keyed hash, or the full text.

    The hash is HMAC-SHA256 with the caller's secret, so logged hashes cannot be reversed by guessing
    likely contents without the key.
    """

    def __init__(self, mode: LogContent = "none", hash_key: str | bytes | None = None) -> None:
        if mode not in ("none", "hash", "full"):
            raise ConfigError(f"log_content: expected 'none', 'hash' or 'full', got {mode!r}")
        if mode == "hash":
            key = hash_key if hash_key is not None else os.environ.get("CASCADE_LOG_HASH_KEY")
            if not key:
                raise ConfigError(
                    "log_hash_key: log_content='hash' needs a secret key (argument or CASCADE_LOG_HASH_KEY)"
                )
            self._key = key.encode() if isinstance(key, str) else key
        self.mode = mode

    def add(self, event: Event, field: str, content: Any) -> None:
        if self.mode == "none" or content is None:
            return
        if self.mode == "full":
            event[field] = content
            return
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True, default=str)
        event[f"{field}_hash"] = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"ContentPolicy(mode={self.mode!r})"  # never the key


class EventLog:
    """Runs events through the processors and into the sink. Owned by one Cascade."""

    def __init__(self, sink: EventSink | None, processors: Iterable[Processor] = (add_timestamp,)) -> None:
        self.sink = sink
        self.processors = list(processors)

    def emit(self, event: Event) -> None:
        if self.sink is None:
            return
        out: MutableMapping[str, Any] = event
        for p in self.processors:
            out = p(None, "info", out)
        self.sink.emit(out if type(out) is dict else dict(out))  # the engine builds a fresh dict per event

    def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()
