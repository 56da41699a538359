"""A circuit breaker per rung: stop calling a rung that keeps failing, and probe it again later.

``failures`` consecutive provider failures of a rung within ``window_s`` (errors that survived the
retries, or rung-fatal ones; not validator rejections, not errors about the request itself such as
``context_length_exceeded``, which show the rung is up and count as successes) open its circuit.
While open, requests skip the rung at once (an attempt with outcome ``skipped``, reason
``rung_cooling_down``, no HTTP call) and go up the ladder. After ``cooldown_s`` the circuit is
half-open: one request is let through as a probe; its success closes the circuit, its failure opens it
for another cool-down. A probe that never reports (cancelled, skipped for budget) is replaced by
another after ``cooldown_s``. Each transition is a ``breaker`` event in the log. State is per rung and
per :class:`~cascade.Cascade`, shared by all its concurrent requests, and
thread-safe (``run_sync`` from several threads).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ._config import CircuitBreaker
from ._errors import ConfigError, ProviderError
from ._events import BreakerEvent, breaker_event
from ._gates import BaseGate, GateContext, Skip

BreakerState = Literal["closed", "open", "half_open"]
COOLING = "circuit open after repeated failures: rung skipped without a call until its cool-down ends"


class RungBreaker:
    """The state of one rung's circuit."""

    def __init__(self, rung: str, policy: CircuitBreaker, emit: Callable[[Any], None]) -> None:
        self.rung = rung
        self.policy = policy
        self._emit = emit
        self._lock = threading.Lock()
        self.state: BreakerState = "closed"
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probe_at: float | None = None

    def allow(self) -> bool:
        """May a request call the rung now? (In half-open state, True for the single probe only.)"""
        if self.state == "closed":  # fast path, no lock: a stale read only delays a skip by one request
            return True
        with self._lock:
            now = self.policy.clock()
            state: BreakerState = self.state  # re-read under the lock
            if state == "closed":
                return True
            if state == "open":
                if now - self._opened_at < self.policy.cooldown_s:
                    return False
                event = self._move("half_open", "cooldown_elapsed")
            elif self._probe_at is None or now - self._probe_at >= self.policy.cooldown_s:
                event = None  # the last probe never reported: let another one through
            else:
                return False
            self._probe_at = now
        if event is not None:
            self._emit(event)
        return True

    def record(self, error: ProviderError | None) -> None:
        """The outcome of one call: None for an answer (whatever its checks said), else the error. An
        error about the request (``context_length_exceeded``, ``bad_request``...) shows the rung is up: it
        counts as a success."""
        if error is not None and not self.policy.counts(error):
            error = None
        if error is None and self.state == "closed" and not self._failures:
            return  # fast path: healthy rung
        with self._lock:
            now = self.policy.clock()
            event = None
            if error is None:
                self._failures.clear()
                if self.state == "half_open":
                    event = self._move("closed", "probe_succeeded")
            elif self.state == "half_open":
                self._opened_at = now
                event = self._move("open", error.reason)
            elif self.state == "closed":
                self._failures.append(now)
                while self._failures and now - self._failures[0] > self.policy.window_s:
                    self._failures.popleft()
                if len(self._failures) >= self.policy.failures:
                    self._opened_at = now
                    event = self._move("open", error.reason)
            # open: a call let through before the circuit opened failed late; nothing changes
        if event is not None:
            self._emit(event)

    def _move(self, to: BreakerState, reason: str) -> BreakerEvent:
        event = breaker_event(self.rung, self.state, to, reason, len(self._failures), self.policy.cooldown_s)
        self.state = to
        self._probe_at = None
        if to != "closed":
            self._failures.clear()
        return event

    def __repr__(self) -> str:
        return f"RungBreaker(rung={self.rung!r}, state={self.state!r}, policy={self.policy!r})"


class BreakerGate(BaseGate):
    """The breakers of one Cascade as a rung gate, by rung name; rungs without a policy always pass."""

    def __init__(
        self,
        policies: Mapping[str, CircuitBreaker | None],
        emit: Callable[[Any], None],
    ) -> None:
        self._by_rung = {name: RungBreaker(name, p, emit) for name, p in policies.items() if p is not None}

    @classmethod
    def for_rungs(
        cls, rungs: Iterable[Any], default: CircuitBreaker | None, emit: Callable[[Any], None]
    ) -> BreakerGate:
        if default is not None and not isinstance(default, CircuitBreaker):
            raise ConfigError(f"breaker: expected a CircuitBreaker or None, got {default!r}")
        return cls({r.name: getattr(r, "breaker", None) or default for r in rungs}, emit)

    def allow(self, ctx: GateContext) -> Skip | None:
        b = self._by_rung.get(ctx.rung.name)
        return None if b is None or b.allow() else Skip("rung_cooling_down", COOLING, kind="breaker")

    def on_call(self, ctx: GateContext, error: ProviderError | None, latency_s: float) -> None:
        self.record(ctx.rung.name, error)

    def record(self, rung: str, error: ProviderError | None) -> None:
        b = self._by_rung.get(rung)
        if b is not None:
            b.record(error)

    def state(self, rung: str) -> BreakerState | None:
        """``closed``/``open``/``half_open``, or None when the rung has no breaker."""
        b = self._by_rung.get(rung)
        return None if b is None else b.state

    def __repr__(self) -> str:
        return f"BreakerGate({ {n: b.state for n, b in self._by_rung.items()}!r})"
