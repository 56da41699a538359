"""Rung health shared between replicas: a circuit one replica opened, or a rung it found idle, is
skipped by the others too.

Each replica's own breaker and :class:`~cascade.SkipIdle` decide as in the library; their transitions
(the ``breaker`` and ``idle`` events) are published to the state store: an open circuit for its
cool-down, an idle rung until a probe accepts. Before each request the replica reads the flags of its
rungs (one round trip) and :class:`SharedHealth`, a rung gate, skips the flagged ones with the same
reasons (``rung_cooling_down``, ``rung_idle``), letting one request in ``probe_every`` probe an idle
rung as the library does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from .._breaker import COOLING
from .._gates import BaseGate, GateContext, Skip
from .._idle import IDLE
from ._state import StateStore

IDLE_TTL_S = 86_400.0


class SharedHealth(BaseGate):
    """The shared flags of one cascade's rungs (``name`` is its model name) as a gate and an event sink."""

    def __init__(self, state: StateStore, name: str, rungs: list[str], *, probe_every: int = 10) -> None:
        self.state = state
        self.name = name
        self.rungs = rungs
        self.probe_every = probe_every
        self.flags: dict[str, str] = {}
        self._passed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _key(self, rung: str, kind: str) -> str:
        return f"health:{self.name}:{rung}:{kind}"

    async def refresh(self) -> None:
        """Read every rung's flags from the store (before a request)."""
        keys = [self._key(r, kind) for r in self.rungs for kind in ("breaker", "idle")]
        values = await self.state.get_many(keys)
        flags = {}
        for i, rung in enumerate(self.rungs):
            breaker, idle = values[2 * i], values[2 * i + 1]
            if breaker is not None:
                flags[rung] = "open"
            elif idle is not None:
                flags[rung] = "idle"
        self.flags = flags

    def allow(self, ctx: GateContext) -> Skip | None:
        flag = self.flags.get(ctx.rung.name)
        if flag == "open":
            return Skip("rung_cooling_down", COOLING + " (opened by another replica)", kind="breaker")
        if flag == "idle" and not ctx.is_top:
            with self._lock:
                passed = self._passed[ctx.rung.name] = self._passed.get(ctx.rung.name, 0) + 1
            if passed % self.probe_every:
                return Skip("rung_idle", IDLE + " (found idle by another replica)", kind="idle")
        return None

    def on_visit(self, ctx: GateContext, accepted: bool) -> None:
        if accepted and self.flags.get(ctx.rung.name) == "idle":  # a probe accepted here: active again
            self._publish(self.state.delete(self._key(ctx.rung.name, "idle")))

    def emit(self, event: dict[str, Any]) -> None:
        """The cascade's events: publish breaker and idle transitions."""
        kind, rung, to = event.get("event"), event.get("rung"), event.get("to")
        if not isinstance(rung, str):
            return
        if kind == "breaker" and to == "open":
            ttl = float(event.get("cooldown_s") or 30.0)
            self._publish(self.state.set(self._key(rung, "breaker"), "open", ttl))
        elif kind == "breaker" and to == "closed":
            self._publish(self.state.delete(self._key(rung, "breaker")))
        elif kind == "idle" and to == "skipping":
            self._publish(self.state.set(self._key(rung, "idle"), "skipping", IDLE_TTL_S))
        elif kind == "idle" and to == "active":
            self._publish(self.state.delete(self._key(rung, "idle")))

    def _publish(self, write: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync caller): nothing to share with
            write.close()
            return
        task = loop.create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def __repr__(self) -> str:
        return f"SharedHealth({self.name!r}, flags={self.flags!r})"
