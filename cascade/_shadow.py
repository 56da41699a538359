"""The shadow audit: a sampled fraction of answers accepted below the top rung is also sent to the top
rung, off the answer path, and the two answers compared.

A cascade's silent failure mode is a cheap rung that keeps passing its checks while its answers drift
away from what the top rung would say. ``Cascade(shadow=Shadow(rate=0.02))`` measures that: after a
request accepted below the top has returned its answer, with probability ``rate`` the top rung is
called with the same messages (a background task on the same event loop, charged to the shadow's own
``budget_usd``, never to the request), and a ``shadow`` event records whether the two answers agree.
:func:`estimate` turns the counts into the share of answers that differ from the top rung's, with a
95% Wilson interval: the live estimate of the quality lost against the top rung alone (an upper bound:
where they differ the cheap answer may still be right). The shadowed pairs are also a calibration set:
``cascade tune --from-log LOG`` refits the policy's threshold on them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import CascadeError, ConfigError
from ._events import SCHEMA_VERSION, ShadowEvent
from ._ledger import Budget, bound_call, charge
from ._retry import call_with_retries
from ._types import Completion, CompletionRequest, Message

if TYPE_CHECKING:
    from ._content import ContentPolicy
    from ._ladder import Rung
    from ._result import CascadeResult


def _default_answer(text: str) -> Any:
    from .validators._choice import _bare

    return _bare(text).casefold() or None


@dataclass(frozen=True)
class Shadow:
    """Audit a sampled ``rate`` of the answers accepted below the top rung against the top rung.

    ``budget_usd``: the most all shadow calls of the cascade may spend together (None: no cap); a
    call that does not fit is skipped and logged. ``answer`` reads an answer from a text for the
    comparison (a function, or a policy answer rule such as ``{"kind": "choice", "labels": [...]}``;
    default: the bare text, case-folded). ``seed`` makes the sampling reproducible."""

    rate: float = 0.02
    budget_usd: float | None = None
    seed: int | None = None
    answer: Callable[[str], Any] | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate <= 1:
            raise ConfigError(f"Shadow: rate must be a share in [0, 1], got {self.rate!r}")
        b = self.budget_usd
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b < 0):
            raise ConfigError(f"Shadow: budget_usd must be a finite number >= 0 (USD) or None, got {b!r}")
        if self.answer is not None and not callable(self.answer) and not isinstance(self.answer, Mapping):
            raise ConfigError(f"Shadow: answer must be a function of the text or an answer rule, got {self.answer!r}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``k / n`` (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ShadowEstimate:
    """What the audit saw: ``requests`` finished, ``below_top`` of them accepted below the top rung,
    ``compared`` shadowed pairs and ``disagreed`` among them. ``disagreement`` (with ``ci``) is the
    share of shadowed answers that differ from the top rung's; ``lost_vs_top`` (with ``lost_ci``) the
    estimated share of *all* answers that differ from what the top rung alone would have said."""

    requests: int
    below_top: int
    compared: int
    disagreed: int
    errors: int
    skipped: int
    spent_usd: float

    @property
    def disagreement(self) -> float | None:
        return self.disagreed / self.compared if self.compared else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.disagreed, self.compared) if self.compared else None

    @property
    def lost_vs_top(self) -> float | None:
        d = self.disagreement
        return None if d is None or not self.requests else d * self.below_top / self.requests

    @property
    def lost_ci(self) -> tuple[float, float] | None:
        ci = self.ci
        if ci is None or not self.requests:
            return None
        share = self.below_top / self.requests
        return ci[0] * share, ci[1] * share

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted_below_top": self.below_top,
            "compared": self.compared,
            "disagreed": self.disagreed,
            "errors": self.errors,
            "skipped": self.skipped,
            "spent_usd": self.spent_usd,
            "disagreement": self.disagreement,
            "disagreement_ci95": self.ci,
            "lost_vs_top": self.lost_vs_top,
            "lost_vs_top_ci95": self.lost_ci,
        }


class ShadowTally:
    """The audit's counts read back from a log, one event at a time (``request`` and ``shadow``)."""

    def __init__(self) -> None:
        self.requests = self.below = self.compared = self.disagreed = self.errors = self.skipped = 0
        self.spent = 0.0

    def add(self, e: Mapping[str, Any]) -> None:
        kind = e.get("event")
        if kind == "request":
            self.requests += 1
            top = e.get("top_rung")
            top_name = top.get("name") if isinstance(top, Mapping) else None
            if e.get("accepted") and e.get("answered_by") not in (None, top_name):
                self.below += 1
        elif kind == "shadow":
            outcome = e.get("outcome")
            self.compared += outcome in ("agree", "disagree")
            self.disagreed += outcome == "disagree"
            self.errors += outcome == "error"
            self.skipped += outcome == "skipped"
            cost = e.get("cost_usd")
            self.spent += float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0

    @property
    def audited(self) -> bool:
        return bool(self.compared or self.errors or self.skipped)

    def estimate(self) -> ShadowEstimate:
        return ShadowEstimate(
            self.requests, self.below, self.compared, self.disagreed, self.errors, self.skipped, self.spent
        )


def estimate_from_events(events: Iterable[Mapping[str, Any]]) -> ShadowEstimate:
    """The audit's estimate read back from a log (its ``request`` and ``shadow`` events)."""
    tally = ShadowTally()
    for e in events:
        tally.add(e)
    return tally.estimate()


class ShadowAudit:
    """The running audit of one :class:`~cascade.Cascade` (built by it from a :class:`Shadow`)."""

    def __init__(
        self,
        shadow: Shadow,
        top: Rung,
        wire_of: Callable[[str], dict[str, Any]],
        token_counter: Callable[[list[Message]], int],
        emit: Callable[[dict[str, Any]], None],
        content: ContentPolicy,
    ) -> None:
        self.shadow, self.top, self._wire_of, self._tokens = shadow, top, wire_of, token_counter
        self._emit, self._content = emit, content
        self._rng = random.Random(shadow.seed)
        self._budget = Budget(shadow.budget_usd)
        self._tasks: set[asyncio.Task[None]] = set()
        if shadow.answer is None:
            self._answer: Callable[[str], Any] = _default_answer
        elif isinstance(shadow.answer, Mapping):
            from .validators._policy import check_answer_rule, extract

            rule = check_answer_rule(shadow.answer)
            self._answer = lambda text: extract(rule, text)
        else:
            self._answer = shadow.answer
        self.requests = self.below_top = self.compared = self.disagreed = self.errors = self.skipped = 0
        self.spent = 0.0

    def after(self, messages: list[Message], params: dict[str, Any], result: CascadeResult) -> None:
        """Called once the request's answer is final: count it, maybe schedule its shadow call."""
        self.requests += 1
        if not result.accepted or result.answered_by in (None, self.top.name) or result.output is None:
            return
        self.below_top += 1
        if self._rng.random() >= self.shadow.rate:
            return
        task = asyncio.get_running_loop().create_task(self._audit(messages, params, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _audit(self, messages: list[Message], params: dict[str, Any], result: CascadeResult) -> None:
        top = self.top
        wire, worst = bound_call(self._budget, self._tokens(messages), {**self._wire_of(top.name), **params},
                                 top.price_in, top.price_out)  # fmt: skip
        started = time.perf_counter()
        if not self._budget.reserve(worst):
            self.skipped += 1
            self._event(result, "skipped", None, 0.0, started, "shadow_budget_exhausted")
            return
        request = CompletionRequest(top.model, messages, wire)
        try:
            completion: Completion = await call_with_retries(lambda: top.provider.complete(request), top.retry, _ignore)
        except CascadeError as exc:
            self._budget.settle(worst, 0.0)
            self.errors += 1
            self._event(result, "error", None, 0.0, started, getattr(exc, "reason", type(exc).__name__))
            return
        _, _, cost, _ = charge(completion, self._tokens(messages), wire, top.price_in, top.price_out, worst)
        self._budget.settle(worst, cost)
        self.spent += cost
        mine, theirs = self._answer(result.output or ""), self._answer(completion.text)
        agree = mine is not None and mine == theirs
        self.compared += 1
        self.disagreed += not agree
        self._event(result, "agree" if agree else "disagree", completion.text, cost, started, None)

    def _event(
        self, result: CascadeResult, outcome: Any, output: str | None, cost: float, started: float, reason: str | None
    ) -> None:
        event: ShadowEvent = {
            "event": "shadow",
            "v": SCHEMA_VERSION,
            "request_id": result.request_id,
            "rung": str(result.answered_by),
            "top": self.top.name,
            "outcome": outcome,
            "rate": self.shadow.rate,
            "cost_usd": cost,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "reason": reason,
            "metadata": dict(result.metadata),
        }
        out: dict[str, Any] = dict(event)
        if output is not None:
            self._content.add(out, "output", output)
        self._emit(out)

    def estimate(self) -> ShadowEstimate:
        """The live estimate (see :class:`ShadowEstimate`)."""
        return ShadowEstimate(
            self.requests, self.below_top, self.compared, self.disagreed, self.errors, self.skipped, self.spent
        )

    async def drain(self) -> None:
        """Wait for the shadow calls still running (``Cascade.aclose`` does)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _ignore(_exc: Exception) -> None:
    return None
