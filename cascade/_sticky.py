"""Sticky escalation: a conversation that needed rung k starts at rung k for its next turns.

A hard conversation stays hard: once turn 3 escalated to the strong model, turns 4, 5... would pay the
cheap rungs only to escalate again. :class:`StickySessions` remembers, per session and for ``ttl_s``,
the rung that answered its last escalated turn, and skips the rungs below it (attempts ``skipped`` with
reason ``sticky``, no call). Only an escalation by the checks counts: a cheap rung that was down (an
error, an open circuit) says nothing about the conversation. The session is ``metadata["session_id"]``
when the request carries one (the gateway sets it from a header or the OpenAI ``user`` field), else a
hash of the conversation's first messages, which every later turn repeats.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._gates import BaseGate, GateContext, Skip
from ._types import Message

if TYPE_CHECKING:
    from ._result import CascadeResult

REASON = "sticky"
SESSION_KEY = "session_id"


def session_of(messages: Sequence[Message]) -> str:
    """A stable id of a conversation: a hash of its first system message and its first user message."""
    first = [next((dict(m) for m in messages if m.get("role") == role), None) for role in ("system", "user")]
    digest = hashlib.sha256(json.dumps(first, sort_keys=True, default=str).encode()).hexdigest()
    return "h-" + digest[:24]


def session_id(raw: str) -> str:
    """A caller-given session name as it is stored and logged: hashed, so a user id never reaches the log."""
    return "s-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


class StickySessions(BaseGate):
    """Start each session at the rung that answered its last escalated turn. ``ttl_s`` after its last
    turn a session is forgotten; at most ``max_sessions`` are held (the least recent go first).
    ``clock`` is for tests (monotonic seconds)."""

    def __init__(
        self, ttl_s: float = 3600.0, *, max_sessions: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
            raise ConfigError(f"ttl_s: expected a number of seconds > 0, got {ttl_s!r}")
        if not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigError(f"max_sessions: expected an integer >= 1, got {max_sessions!r}")
        self.ttl_s = float(ttl_s)
        self.max_sessions = max_sessions
        self._clock = clock
        self._floors: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def session(self, metadata: Mapping[str, Any], messages: Sequence[Message]) -> str:
        given = metadata.get(SESSION_KEY)
        return given if isinstance(given, str) and given else session_of(messages)

    def floor(self, session: str) -> int | None:
        """The rung index this session starts at, or None (from the bottom)."""
        with self._lock:
            item = self._floors.get(session)
            if item is None:
                return None
            if item[1] < self._clock():
                del self._floors[session]
                return None
            return item[0]

    def remember(self, session: str, rung_index: int) -> None:
        """The session starts at ``rung_index`` for the next ``ttl_s`` (a lower index never lowers it)."""
        with self._lock:
            old = self._floors.pop(session, None)
            if old is not None and old[1] >= self._clock():
                rung_index = max(rung_index, old[0])
            self._floors[session] = (rung_index, self._clock() + self.ttl_s)
            while len(self._floors) > self.max_sessions:
                self._floors.popitem(last=False)

    def allow(self, ctx: GateContext) -> Skip | None:
        if ctx.is_top:
            return None
        floor = self.floor(self.session(ctx.metadata, ctx.messages))
        if floor is None or ctx.index >= floor:
            return None
        return Skip(REASON, f"this session escalated to rung {floor} on an earlier turn: starting there", REASON)

    def on_finish(self, ctx: GateContext, result: CascadeResult) -> None:
        session = self.session(ctx.metadata, ctx.messages)
        if result.accepted and ctx.index > 0 and any(a.outcome == "escalated" for a in result.attempts):
            self.remember(session, ctx.index)  # the checks turned a lower rung down: the conversation is hard
        elif self.floor(session) is not None:
            self.remember(session, 0)  # another turn of a sticky session: keep it alive

    def __len__(self) -> int:
        return len(self._floors)

    def __repr__(self) -> str:
        return f"StickySessions(ttl_s={self.ttl_s}, sessions={len(self._floors)})"
