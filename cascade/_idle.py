"""Stop paying for a rung that has stopped accepting: skip it, and probe it now and then.

A cheap rung whose answers all fail their checks is pure cost: every request pays for its call,
then escalates anyway (a model too small for the task, a provider update that breaks a prompt).
With ``SkipIdle(after=N, probe_every=K)``, after N consecutive visits without an accepted answer
requests skip the rung (an attempt with outcome ``skipped``, reason ``rung_idle``, no call), but
one request in K still tries it: an accepted answer brings the rung back at once. Errors are the
circuit breaker's business and count neither way. The top rung is never skipped. Each change is an
``idle`` event in the log. State is per rung and per :class:`~cascade.Cascade`, thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ._config import SkipIdle
from ._errors import ConfigError
from ._events import IdleEvent, idle_event
from ._gates import BaseGate, GateContext, Skip

IDLE = "no answer accepted on this rung for a while: skipped without a call, probed now and then"


class RungIdle:
    """One rung's count of visits since it last accepted, and whether it is being skipped."""

    def __init__(self, rung: str, policy: SkipIdle, emit: Callable[[Any], None]) -> None:
        self.rung = rung
        self.policy = policy
        self._emit = emit
        self._lock = threading.Lock()
        self.misses = 0
        self.skipping = False
        self._skipped = 0

    def allow(self) -> bool:
        """Call the rung for this request? While skipping, True for one request in ``probe_every``."""
        if not self.skipping:
            return True
        with self._lock:
            if not self.skipping:
                return True
            self._skipped += 1
            if self._skipped >= self.policy.probe_every:
                self._skipped = 0
                return True
            return False

    def record(self, accepted: bool) -> None:
        """The outcome of one visit that got an answer: accepted, or escalated by its checks."""
        event = None
        with self._lock:
            if accepted:
                self.misses = 0
                if self.skipping:
                    self.skipping = False
                    event = self._event("active", "probe_accepted")
            else:
                self.misses += 1
                if not self.skipping and self.misses >= self.policy.after:
                    self.skipping = True
                    self._skipped = 0
                    event = self._event("skipping", "no_answer_accepted")
        if event is not None:
            self._emit(event)

    def _event(self, to: Literal["skipping", "active"], reason: str) -> IdleEvent:
        return idle_event(self.rung, to, reason, self.misses, self.policy.probe_every)


class IdleGate(BaseGate):
    """The idle trackers of one Cascade as a rung gate, by rung name; the top rung and rungs without a
    policy always pass."""

    def __init__(self, names: Iterable[str], policy: SkipIdle | None, emit: Callable[[Any], None]) -> None:
        if policy is not None and not isinstance(policy, SkipIdle):
            raise ConfigError(f"skip_idle: expected a SkipIdle or None, got {policy!r}")
        self._by_rung = {} if policy is None else {n: RungIdle(n, policy, emit) for n in names}

    def allow(self, ctx: GateContext) -> Skip | None:
        r = self._by_rung.get(ctx.rung.name)
        return None if r is None or r.allow() else Skip("rung_idle", IDLE, kind="idle")

    def on_visit(self, ctx: GateContext, accepted: bool) -> None:
        self.record(ctx.rung.name, accepted)

    def record(self, rung: str, accepted: bool) -> None:
        r = self._by_rung.get(rung)
        if r is not None:
            r.record(accepted)
