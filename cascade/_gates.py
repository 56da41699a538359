"""Rung gates: "may this rung be called for this request, now?"

A gate is asked before each rung's call. It answers ``None`` (call it) or a :class:`Skip` (pass the
rung over without a call: the attempt is logged ``skipped`` with the skip's reason, at no cost, and the
request goes up the ladder). The circuit breaker (``cascade._breaker``) and :class:`~cascade.SkipIdle`
(``cascade._idle``) are two gates; a deadline, sticky sessions or a learned pre-router plug in the same
way, through ``Cascade(gates=[...])``.

Only ``allow`` is required. A gate that learns from what happens may also define any of:

* ``on_call(ctx, error, latency_s)``: after each provider call of the rung (``error`` None for an answer);
* ``on_visit(ctx, accepted)``: after the rung's answer was judged (accepted, or escalated by its checks);
* ``on_finish(ctx, result)``: once the request is over (``ctx`` names the last rung tried).

The top rung is asked too: a gate decides for itself whether it may skip it (``ctx.is_top``). Gates
compose like tenacity's strategies: ``a & b`` allows a rung only when both allow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._errors import ConfigError, ProviderError
from ._types import Message

if TYPE_CHECKING:
    from ._ladder import Rung
    from ._result import CascadeResult


@dataclass(frozen=True, slots=True)
class Skip:
    """A gate's refusal: ``reason`` is the attempt's reason code in the log (``rung_cooling_down``,
    ``rung_idle``, ``deadline``, ``sticky``...), ``message`` says why in words, ``kind`` names the gate."""

    reason: str
    message: str
    kind: str = "gate"


@dataclass(slots=True)
class GateContext:
    """What a gate may look at: the request and the rung it is about to call.

    ``deadline`` is a ``time.monotonic()`` instant or None; ``emit`` writes an event to the cascade's
    log (through its processors), for gates whose state changes are worth recording.
    """

    request_id: str
    rung: Rung
    index: int
    is_top: bool
    messages: Sequence[Message]
    metadata: Mapping[str, Any]
    deadline: float | None = None
    emit: Callable[[dict[str, Any]], None] = field(default=lambda _e: None, repr=False)

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once past it), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()


@runtime_checkable
class RungGate(Protocol):
    """Anything with ``allow(ctx) -> Skip | None``; the hooks in the module docstring are optional."""

    def allow(self, ctx: GateContext) -> Skip | None: ...


class BaseGate:
    """A convenience base: no-op hooks, and ``&`` to combine gates."""

    def allow(self, ctx: GateContext) -> Skip | None:
        return None

    def on_call(self, ctx: GateContext, error: ProviderError | None, latency_s: float) -> None:
        return None

    def on_visit(self, ctx: GateContext, accepted: bool) -> None:
        return None

    def on_finish(self, ctx: GateContext, result: CascadeResult) -> None:
        return None

    def __and__(self, other: RungGate) -> Gates:
        return Gates([self, other])


class Gates(BaseGate):
    """Several gates as one: the first that skips wins; every hook reaches every gate that has it."""

    def __init__(self, gates: Sequence[RungGate] = ()) -> None:
        flat: list[RungGate] = []
        for i, g in enumerate(gates):
            if not callable(getattr(g, "allow", None)):
                raise ConfigError(f"gates[{i}]: expected an object with allow(ctx) (a RungGate), got {g!r}")
            flat.extend(g.gates if isinstance(g, Gates) else [g])
        self.gates: tuple[RungGate, ...] = tuple(flat)
        self._on_call = [h for g in flat if (h := getattr(g, "on_call", None)) is not None]
        self._on_visit = [h for g in flat if (h := getattr(g, "on_visit", None)) is not None]
        self._on_finish = [h for g in flat if (h := getattr(g, "on_finish", None)) is not None]

    def allow(self, ctx: GateContext) -> Skip | None:
        for g in self.gates:
            skip = g.allow(ctx)
            if skip is not None:
                return skip
        return None

    def on_call(self, ctx: GateContext, error: ProviderError | None, latency_s: float) -> None:
        for hook in self._on_call:
            hook(ctx, error, latency_s)

    def on_visit(self, ctx: GateContext, accepted: bool) -> None:
        for hook in self._on_visit:
            hook(ctx, accepted)

    def on_finish(self, ctx: GateContext, result: CascadeResult) -> None:
        for hook in self._on_finish:
            hook(ctx, result)

    def __and__(self, other: RungGate) -> Gates:
        return Gates([*self.gates, other])

    def __repr__(self) -> str:
        return f"Gates({list(self.gates)!r})"
