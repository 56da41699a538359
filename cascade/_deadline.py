"""A latency budget across the whole ladder: ``Cascade(deadline_s=...)`` or ``run(deadline_s=...)``.

The :class:`DeadlineGate` skips a rung (reason ``deadline``, no call) when the time left is already
gone, or when the rung's observed p95 latency no longer fits in it: a rung that usually answers in 8 s
is not worth starting with 3 s left. The walk also caps each call at the time left (a call cut short
fails with reason ``deadline``) and accepts no answer judged after the deadline, so a request never
answers late. Latencies are those of this cascade's calls, a bounded window per rung.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

from ._errors import ConfigError, ProviderError
from ._gates import BaseGate, GateContext, Skip

REASON = "deadline"


class DeadlineGate(BaseGate):
    """Skips a rung whose ``quantile`` latency (of its last ``window`` calls, once it has ``min_calls``)
    exceeds the time left. Inactive for requests without a deadline. One per cascade; thread-safe."""

    def __init__(self, *, quantile: float = 0.95, window: int = 200, min_calls: int = 5) -> None:
        if not 0 < quantile <= 1:
            raise ConfigError(f"quantile: expected a number in (0, 1], got {quantile!r}")
        if window < 1 or min_calls < 1:
            raise ConfigError(f"window and min_calls: expected integers >= 1, got {window!r}, {min_calls!r}")
        self.quantile = quantile
        self.window = window
        self.min_calls = min_calls
        self._latencies: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def expected_s(self, rung: str) -> float | None:
        """The rung's ``quantile`` latency in seconds, or None before ``min_calls`` calls."""
        with self._lock:
            seen = sorted(self._latencies.get(rung, ()))
        if len(seen) < self.min_calls:
            return None
        return seen[min(len(seen) - 1, math.ceil(self.quantile * len(seen)) - 1)]

    def allow(self, ctx: GateContext) -> Skip | None:
        left = ctx.time_left()
        if left is None:
            return None
        if left <= 0:
            return Skip(REASON, "the request's deadline has passed: rung skipped without a call", REASON)
        expected = self.expected_s(ctx.rung.name)
        if expected is not None and expected > left:
            message = f"p{round(self.quantile * 100)} latency {expected:.3f}s of this rung exceeds the {left:.3f}s left"
            return Skip(REASON, message, REASON)
        return None

    def on_call(self, ctx: GateContext, error: ProviderError | None, latency_s: float) -> None:
        with self._lock:  # a call cut short by the deadline counts too: it took at least that long
            seen = self._latencies.get(ctx.rung.name)
            if seen is None:
                seen = self._latencies[ctx.rung.name] = deque(maxlen=self.window)
            seen.append(latency_s)

    def __repr__(self) -> str:
        return f"DeadlineGate(quantile={self.quantile}, window={self.window}, min_calls={self.min_calls})"


def check_deadline(value: Any, field: str) -> float | None:
    """A deadline in seconds: None, or a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{field}: expected a number of seconds > 0, got {value!r}")
    return float(value)
