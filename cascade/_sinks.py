"""Where events go: small sinks behind one protocol, fed through structlog-style processors.

A sink receives finished events (plain dicts, see ``cascade._events``) and must not lose one it returned
from. ``make_sink`` turns what users pass as ``log=`` into a sink.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import stat
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._errors import ConfigError
from ._events import Event
from ._fields import items
from ._logs._read import log_files

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


_encode = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
"""One encoder for all lines (``json.dumps`` with options builds a new one per call)."""
_encode_ascii = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def encode_line(event: Mapping[str, Any]) -> bytes:
    """One event as one UTF-8 JSON line. Always valid JSON: a non-finite float (not JSON) is written as
    null, and text holding a lone surrogate (valid in JSON, not encodable as UTF-8) is escaped."""
    try:
        text = _encode(event)
    except ValueError:  # NaN or infinity somewhere in the event
        text = _encode(_finite(event))
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (_encode_ascii(json.loads(text)) + "\n").encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


RECENT_LINES = 1024
"""Lines kept to write again after a copytruncate rotation (those between the copy and the truncate)."""
MAX_RECENT_BYTES = 4 * 1024 * 1024


class LogFileError(ConfigError):
    """A log path that cannot be written safely: a symlink, not a regular file, or someone else's file
    that others can read."""


class JsonlSink:
    """Append-only JSON Lines file: one complete object per line, flushed per event, owner-only (0600).

    One ``write`` of a whole line under a lock, so concurrent emitters (threads, tasks) never interleave
    or leave a partial line. Values that are not JSON are written with ``str``. ``close`` releases the
    file; an event emitted after it (another thread's request still finishing) reopens it, so no line
    is lost to a close that came too early.

    Safe to point at a shared directory: the path is opened with ``O_NOFOLLOW`` (a symlink planted there
    is refused), and an existing file that group or others can read is tightened to 0600 (or refused
    when it belongs to someone else). Rotation as ``logging.handlers.WatchedFileHandler`` does it: before
    each line the path is checked, and when its inode changed (renamed away, or removed) a new file is
    opened there. Under copytruncate the file keeps its inode and, opened ``O_APPEND``, the next line
    lands at the start of the emptied file; the lines written between the tool's copy and its truncate
    (which copytruncate loses, as logrotate warns) are found by comparing the newest rotated copy's last
    line with the last :data:`RECENT_LINES` lines written, and written again at the start.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fsync = fsync
        self._fd = -1
        self._id: tuple[int, int] | None = None
        self._newline_first = False
        self._end = 0
        self._recent: deque[bytes] = deque(maxlen=RECENT_LINES)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise ConfigError(f"log: cannot write to {str(self.path)!r}: {exc.strerror or exc}") from None

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LogFileError(
                    f"log: {str(self.path)!r} is a symbolic link; refusing to follow it (point log= at the real file)"
                ) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LogFileError(f"log: {str(self.path)!r} is not a regular file")
            if st.st_mode & 0o077:
                if st.st_uid != os.geteuid():
                    raise LogFileError(
                        f"log: {str(self.path)!r} belongs to uid {st.st_uid} and others can read it "
                        f"(mode {stat.S_IMODE(st.st_mode):o}); refusing to write prompts' metadata into it"
                    )
                os.fchmod(fd, 0o600)  # ours, but readable by others: tighten it
            # A crash tore the last line: our first line starts on a fresh one (done at the first write, so
            # a reader of the file until then still sees the tear as a tear).
            self._newline_first = _ends_torn(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._id, self._end = fd, (st.st_dev, st.st_ino), st.st_size

    def _reopen_if_rotated(self) -> list[bytes]:
        """WatchedFileHandler semantics: a new file when the path no longer names the one we hold. After
        a copytruncate, the lines the copy missed (to write again)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._id:
            self._close_fd()
            self._open()
            self._recent.clear()
            return []
        if st.st_size < self._end:  # truncated under us: copytruncate
            self._end = st.st_size
            return self._missed_by_copy()
        return []

    def _missed_by_copy(self) -> list[bytes]:
        copies = [p for p in log_files(str(self.path)) if os.path.abspath(p) != os.path.abspath(self.path)]
        recent = list(self._recent)
        self._recent.clear()
        if not copies:
            return []
        try:
            with open(copies[-1], "rb") as f:  # a plain copy (a compressed one is older than our lines)
                f.seek(max(0, os.fstat(f.fileno()).st_size - MAX_RECENT_BYTES))
                tail = f.read()
        except OSError:
            return []
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"
        for i in range(len(recent) - 1, -1, -1):
            if recent[i] == last:
                return recent[i + 1 :]
        return []

    def emit(self, event: Event) -> None:
        line = encode_line(event)
        with self._lock:
            if self._fd < 0:
                self._open()
                missed = []
            else:
                missed = self._reopen_if_rotated()
            for old in missed:
                self._write(old)
            self._write(line)
            if self._fsync:
                os.fsync(self._fd)

    def _write(self, line: bytes) -> None:
        data = b"\n" + line if self._newline_first else line
        self._newline_first = False
        written = os.write(self._fd, data)
        self._end += written
        if written != len(data):  # a full disk or a file-size limit cut the line: never glue onto it
            self._newline_first = True
            raise OSError(errno.ENOSPC, f"short write to {self.path} ({written} of {len(data)} bytes)")
        self._recent.append(line)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        with self._lock:
            self._close_fd()

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


LogLevel = str
"""A logger method name: ``debug``, ``info``, ``warning`` or ``error``."""


def event_level(event: Mapping[str, Any]) -> LogLevel:
    """The log level an event deserves: routine work is ``debug``, a climb up the ladder ``info``,
    something an operator should look at ``warning`` (a failed call, a request with no answer, a budget
    stop, an opened circuit, unreadable lines), a request that failed outright ``error``."""
    kind, outcome = event.get("event"), event.get("outcome")
    reasons = items(event.get("reasons"))
    if kind == "attempt":
        if outcome == "error":
            error = event.get("error")
            return "error" if isinstance(error, Mapping) and error.get("kind") == "caller" else "warning"
        if outcome == "skipped":
            return "warning" if any(str(r).startswith("budget_") for r in reasons) else "info"
        if outcome == "escalated":
            return "warning" if "budget_overrun" in reasons else "info"
        return "debug"  # accepted, reask
    if kind == "request":
        if outcome == "error":
            return "error"
        if outcome != "accepted":
            return "warning"  # exhausted: nothing accepted
        return "info" if event.get("escalations") else "debug"
    if kind == "breaker":
        return "warning" if event.get("to") == "open" else "info"
    if kind == "resume":
        return "warning" if event.get("bad_lines") else "info"
    return "info"  # idle and kinds this version does not know


class StructlogSink:
    """Hands each event to a structlog logger at the level it deserves (``event_level``, or your own
    ``level_of``): ``logger.<level>(event_name, **fields)``."""

    def __init__(self, logger: Any = None, *, level_of: Callable[[Mapping[str, Any]], LogLevel] = event_level) -> None:
        import structlog

        self.logger = logger if logger is not None else structlog.get_logger("cascade")
        self.level_of = level_of

    def emit(self, event: Event) -> None:
        fields = dict(event)
        name = fields.pop("event", "cascade")
        log = getattr(self.logger, self.level_of(event), None)
        (log if callable(log) else self.logger.info)(name, **fields)


class LoggingSink:
    """Hands each event to a stdlib ``logging.Logger`` as one JSON line at INFO (the event dict is also
    on the record as ``cascade_event``, for handlers that format it themselves)."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.logger = logger

    def emit(self, event: Event) -> None:
        self.logger.info(encode_line(event).decode("utf-8").rstrip("\n"), extra={"cascade_event": event})


class MultiSink:
    """Fans one event out to several sinks: every sink gets it even when one fails (the first failure
    is raised after all were tried)."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        failed: Exception | None = None
        for s in self.sinks:
            try:
                s.emit(event)
            except Exception as exc:  # the others still get the line
                failed = failed or exc
        if failed is not None:
            raise failed

    def close(self) -> None:
        for s in self.sinks:
            close = getattr(s, "close", None)
            if callable(close):
                close()


def make_sink(log: str | os.PathLike[str] | EventSink | Iterable[Any] | None) -> EventSink | None:
    """``log=`` as users give it: a path (JSONL), a sink, a stdlib ``logging.Logger``, a structlog logger,
    or a list of these. What cannot be written to is refused here, not at the first request."""
    if log is None:
        return None
    if isinstance(log, (str, os.PathLike)):
        return JsonlSink(log)
    if isinstance(log, EventSink):
        return log
    if isinstance(log, (logging.Logger, logging.LoggerAdapter)):
        return LoggingSink(log)
    if callable(getattr(log, "info", None)):
        return StructlogSink(log)
    if isinstance(log, Iterable) and not isinstance(log, (bytes, Mapping)):
        return MultiSink(s for item in log if (s := make_sink(item)) is not None)
    raise ConfigError(
        "log: expected a file path, an EventSink (an object with emit(event)), a logging.Logger, a structlog "
        f"logger or a list of these, got {log!r:.80}"
    )


class LogWriteWarning(RuntimeWarning):
    """A log line could not be written (disk full, a closed file, a sink that raised): the request
    went on, the line is counted in ``result.log_errors`` and the next line written says how many were
    lost (``log_lost``)."""


class EventLog:
    """Runs events through the processors and into the sink. Owned by one Cascade.

    A sink that raises never turns an answered (and paid) request into an exception: the failed line
    is counted (:attr:`lost`), a :class:`LogWriteWarning` is issued once, :meth:`write` returns False (the
    engine adds it to the request's ``log_errors``), and the next line that is written carries
    ``log_lost``: how many lines were lost since the last one that was."""

    def __init__(self, sink: EventSink | None, processors: Iterable[Processor] = (add_timestamp,)) -> None:
        self.sink = sink
        self.processors = list(processors)
        self.lost = 0
        self._unreported = 0
        self._warned = False
        self._count_lock = threading.Lock()

    def emit(self, event: Mapping[str, Any]) -> None:
        """Run one event (a typed event of ``cascade._events`` or a plain dict) into the sink."""
        self.write(event)

    def write(self, event: Mapping[str, Any]) -> bool:
        """:meth:`emit`, saying whether the line was written (False: lost, and counted)."""
        if self.sink is None:
            return True
        out: MutableMapping[str, Any] = dict(event)
        try:
            for p in self.processors:
                out = p(None, "info", out)
            line = out if type(out) is dict else dict(out)
            unreported = self._unreported
            if unreported:
                line["log_lost"] = unreported
            self.sink.emit(line)
        except Exception as exc:  # a log failure must not fail the request
            self._lose(exc)
            return False
        if unreported:
            with self._count_lock:
                self._unreported -= unreported
        return True

    def _lose(self, exc: Exception) -> None:
        with self._count_lock:
            self.lost += 1
            self._unreported += 1
            warn = not self._warned
            self._warned = True
        if warn:
            warnings.warn(
                f"log: a line could not be written ({type(exc).__name__}: {exc}); requests go on, lost lines "
                "are counted in result.log_errors and in the next line's log_lost (warned once)",
                LogWriteWarning,
                stacklevel=4,
            )

    def close(self) -> None:
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()
