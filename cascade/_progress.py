"""Batch progress: counts and spend as results come in, for a callback, a bar on a terminal, or log lines.

``map``/``imap``/``map_sync`` feed one :class:`ProgressTracker` per batch. What is shown:

* ``progress=None`` (default): a rich bar on stderr when stderr is a terminal and rich (``[cli]``) is
  installed, a plain line every ``interval_s`` when it is a terminal without rich, nothing otherwise
  (a batch job's log is not the place for a bar; pass ``progress=True`` for lines there).
* ``progress=True``: the rich bar on a terminal; elsewhere (a notebook, a log file) one plain line every
  ``interval_s`` and a last one at the end: whole lines only, no carriage returns or escape codes, so
  notebook cells and log files stay readable. (A notebook's own widget bar: feed it from ``on_progress``.)
* ``progress=False``: nothing.

``on_progress`` is called with a :class:`BatchProgress` after every result, whatever is shown; an
exception it raises stops the batch like any exception in the caller's code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TextIO

from ._errors import ConfigError
from ._result import CascadeResult


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch so far. ``total`` is None when the inputs have no ``len()``. ``spend_usd`` is what this
    run spent (results resumed from an earlier log cost nothing now)."""

    done: int = 0
    total: int | None = None
    accepted: int = 0
    escalated: int = 0
    """Requests that left the cheapest rung (``escalations > 0``)."""
    failed: int = 0
    """Requests with no accepted answer (``exhausted`` or ``error``)."""
    resumed: int = 0
    spend_usd: float = 0.0
    elapsed_s: float = 0.0

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.done if self.done else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.done if self.done else 0.0

    @property
    def projected_usd(self) -> float | None:
        """Spend at the end if the rest costs what this run's requests cost on average so far."""
        ran = self.done - self.resumed
        if self.total is None or ran <= 0:
            return None
        return self.spend_usd + self.spend_usd / ran * max(0, self.total - self.done)

    def line(self) -> str:
        """One human line: ``120/5,000 · 61.7% accepted · 38.3% escalated · $0.0123 spent · ~$0.51 at end``."""
        count = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}"
        parts = [count, f"{self.accepted_rate:.1%} accepted", f"{self.escalation_rate:.1%} escalated"]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        parts.append(f"${self.spend_usd:.4f} spent")
        projected = self.projected_usd
        if projected is not None:
            parts.append(f"~${projected:.4f} at end")
        return " · ".join(parts)


ProgressCallback = Callable[[BatchProgress], None]


class _Display(Protocol):
    def show(self, p: BatchProgress, final: bool) -> None: ...

    def close(self) -> None: ...


class ProgressTracker:
    """Counts one batch's results and passes each new state to the callback and the display."""

    def __init__(
        self,
        inputs: Any,
        progress: bool | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        stream: TextIO | None = None,
        interval_s: float = 10.0,
    ) -> None:
        if progress is not None and not isinstance(progress, bool):
            raise ConfigError(f"progress: expected True, False or None (auto), got {progress!r}")
        if on_progress is not None and not callable(on_progress):
            raise ConfigError(f"on_progress: expected a callable taking a BatchProgress, got {on_progress!r}")
        self.state = BatchProgress(total=_length(inputs))
        self._callback = on_progress
        self._started = time.monotonic()
        self._display = _display(progress, stream if stream is not None else sys.stderr, interval_s)

    def add(self, result: CascadeResult) -> None:
        s = self.state
        self.state = replace(
            s,
            done=s.done + 1,
            accepted=s.accepted + result.accepted,
            escalated=s.escalated + (result.escalations > 0),
            failed=s.failed + (not result.accepted),
            resumed=s.resumed + result.resumed,
            spend_usd=s.spend_usd + (0.0 if result.resumed else result.cost_usd),
            elapsed_s=time.monotonic() - self._started,
        )
        if self._callback is not None:
            self._callback(self.state)
        if self._display is not None:
            self._display.show(self.state, final=False)

    def close(self) -> None:
        """End the display with the final state (also when the batch stopped early)."""
        if self._display is not None:
            display, self._display = self._display, None
            display.show(replace(self.state, elapsed_s=time.monotonic() - self._started), final=True)
            display.close()


def _length(inputs: Any) -> int | None:
    """``len(inputs)`` when the inputs know it (a list, a DataFrame), else None (a generator)."""
    try:
        return len(inputs)
    except TypeError:
        return None


def _display(progress: bool | None, stream: TextIO, interval_s: float) -> _Display | None:
    if progress is False:
        return None
    tty = _isatty(stream)
    if tty:
        bar = _RichBar.make(stream)
        if bar is not None:
            return bar
    if tty or progress:
        return _Lines(stream, interval_s)
    return None


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class _Lines:
    """A plain line every ``interval_s`` (and the last one), for logs and notebooks without widgets."""

    def __init__(self, stream: TextIO, interval_s: float) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._next = time.monotonic() + interval_s

    def show(self, p: BatchProgress, final: bool) -> None:
        now = time.monotonic()
        if not final and now < self._next:
            return
        self._next = now + self.interval_s
        end = "" if not final or p.total is None else " (done)" if p.done >= p.total else " (stopped)"
        self.stream.write(f"cascade: {p.line()}{end}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class _RichBar:
    """rich's progress bar, refreshed at most ten times a second from the batch's own task (no thread)."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar = bar
        self.task = task
        self._last = 0.0

    @classmethod
    def make(cls, stream: TextIO) -> _RichBar | None:
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            from rich.table import Column
        except ImportError:
            return None
        console = Console(file=stream)
        fixed = Column(no_wrap=True)
        bar = Progress(
            TextColumn("cascade", table_column=fixed),
            BarColumn(bar_width=20),
            MofNCompleteColumn(table_column=fixed),
            TimeElapsedColumn(table_column=fixed),
            TextColumn("{task.fields[stats]}", table_column=Column(ratio=1)),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        task = bar.add_task("cascade", total=None, stats="")
        bar.start()
        return cls(bar, task)

    def show(self, p: BatchProgress, final: bool) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        stats = p.line().split(" · ", 1)[1]  # the count is the bar's own column
        self.bar.update(self.task, completed=p.done, total=p.total, stats=stats)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.stop()
