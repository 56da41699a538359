"""The types the pipeline passes along: what a provider is asked and answers, and what a check sees.

One completion shape for OpenAI-style, Anthropic and recorded (replay) answers, so validators and the
ledger never look at a provider's wire format. The check protocol (:class:`Verdict`,
:class:`Candidate`, :class:`Validator`) lives here too, beside what it inspects, so the engine and
the validators both depend on this module and never on each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = Mapping[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its log-probability and the alternatives the provider returned."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool (function) call the model asked for: ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the engine asks a provider for: one chat completion on one model."""

    model: str
    messages: Sequence[Message]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer of one model, whatever the provider.

    ``cost_usd`` is set only by providers that know the real price of the call (a replay of recorded
    costs); otherwise the engine prices ``tokens_in``/``tokens_out`` at the rung's prices.
    ``confidence`` is a provider-reported confidence in [0, 1] where there are no token logprobs.
    ``tokens_in``/``tokens_out`` of -1 mean the provider reported no usage: the engine then charges
    an upper bound rather than nothing.
    """

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = "stop"
    model: str = ""
    logprobs: tuple[TokenLogprob, ...] | None = None
    cost_usd: float | None = None
    confidence: float | None = None
    latency_ms: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one check.

    ``reason`` is a stable code that lands in the escalation log (``schema_invalid``,
    ``low_agreement``, ``custom:<name>``...). ``value`` carries what the check produced (a parsed
    object, the majority answer); ``text`` replaces the candidate's output when the check picked a
    better one (self-consistency's majority sample). ``children`` holds the verdicts of a composite.
    """

    passed: bool
    reason: str = "ok"
    score: float | None = None
    detail: str = ""
    validator: str = ""
    value: Any = None
    text: str | None = None
    children: tuple[Verdict, ...] = ()

    def leaves(self) -> list[Verdict]:
        """The verdicts of the individual checks behind this one (itself if it is not a composite)."""
        if not self.children:
            return [self]
        out: list[Verdict] = []
        for child in self.children:
            out.extend(child.leaves())
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "validator": self.validator,
            "passed": self.passed,
            "reason": self.reason,
            "score": self.score,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One earlier rung's judged answer in the same request: what later checks may compare against.

    ``confidence`` is the first score any of its checks reported (``Confidence``'s probability), or
    the provider's own confidence, or None. ``text`` is None when the rung gave no answer (an error).
    """

    rung: str
    rung_index: int
    model: str
    text: str | None
    parsed: Any
    verdicts: tuple[Verdict, ...]
    accepted: bool
    confidence: float | None = None


class Sampler(Protocol):
    """Draws ``k`` more answers from the candidate's rung (``temperature`` None: the rung's default)."""

    def __call__(self, k: int, temperature: float | None = None, /) -> Awaitable[list[Completion]]: ...


Asker = Callable[[Sequence[Message], dict[str, Any]], Awaitable[Completion]]


@dataclass(slots=True)
class Candidate:
    """What a validator sees: one answer of one rung, the request's trajectory so far, and ways to ask
    that rung for more.

    ``history`` holds the earlier rungs' judged answers of this request, cheapest first (agreement
    between rungs and learned deferral read it). ``sample(k)`` draws k further answers from the same
    rung (distinct seeds, counted in the ledger and checked against the budget); ``ask(messages,
    params)`` makes one extra call on the same rung (for example a verbalised-confidence question).
    ``parsed`` is set by an earlier check (JSON schema) so later checks need not parse again.
    """

    text: str
    completion: Completion
    messages: Sequence[Message]
    rung: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    parsed: Any = None
    sampler: Sampler | None = None
    asker: Asker | None = None
    history: tuple[Step, ...] = ()
    rung_index: int = 0
    is_top: bool = False

    async def sample(self, k: int, *, temperature: float | None = None) -> list[Completion]:
        """``k`` more answers of the same rung; ``temperature`` overrides the sampling temperature (the
        default is the request's own temperature when above 0, else 0.7)."""
        if self.sampler is None:
            raise RuntimeError("this candidate cannot draw samples (no sampler attached)")
        return await (self.sampler(k) if temperature is None else self.sampler(k, temperature))

    async def ask(self, messages: Sequence[Message], params: dict[str, Any] | None = None) -> Completion:
        if self.asker is None:
            raise RuntimeError("this candidate cannot make extra calls (no asker attached)")
        return await self.asker(messages, params or {})


@runtime_checkable
class Validator(Protocol):
    """Anything with ``validate(candidate) -> Verdict`` (or an awaitable of one)."""

    def validate(self, candidate: Candidate) -> Verdict | Awaitable[Verdict]: ...
