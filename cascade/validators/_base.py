"""Verdicts, the validator protocol, and composition (``a & b``, ``a | b``) in the style of tenacity.

A validator looks at one candidate answer and returns a :class:`Verdict`. Any object with a
``validate(candidate)`` method (sync or async) is a validator; :func:`check` wraps a plain function.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import CascadeError

if TYPE_CHECKING:
    from .._types import Completion, Message

Sampler = Callable[[int], Awaitable[list["Completion"]]]
Asker = Callable[[Sequence["Message"], dict[str, Any]], Awaitable["Completion"]]


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


@dataclass(slots=True)
class Candidate:
    """What a validator sees: one answer of one rung, and ways to ask that rung for more.

    ``sample(k)`` draws k further answers from the same rung (distinct seeds, counted in the ledger and
    checked against the budget); ``ask(messages, params)`` makes one extra call on the same rung (for
    example a verbalised-confidence question). ``parsed`` is set by an earlier check (JSON schema) so
    later checks need not parse again.
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

    async def sample(self, k: int) -> list[Completion]:
        if self.sampler is None:
            raise RuntimeError("this candidate cannot draw samples (no sampler attached)")
        return await self.sampler(k)

    async def ask(self, messages: Sequence[Message], params: dict[str, Any] | None = None) -> Completion:
        if self.asker is None:
            raise RuntimeError("this candidate cannot make extra calls (no asker attached)")
        return await self.asker(messages, params or {})


@runtime_checkable
class Validator(Protocol):
    """Anything with ``validate(candidate) -> Verdict`` (or an awaitable of one)."""

    def validate(self, candidate: Candidate) -> Verdict | Awaitable[Verdict]: ...


def validator_name(v: object) -> str:
    return str(getattr(v, "name", None) or type(v).__name__)


def validator_cost(v: object) -> int:
    """Relative cost used to order checks: 0 local, 1 needs logprobs, 10 makes extra calls."""
    return int(getattr(v, "cost", 0))


async def run_validator(v: Validator, candidate: Candidate) -> Verdict:
    """Run one validator; a validator that raises fails closed with reason ``validator_error``.

    Provider errors and budget exhaustion raised by the candidate's ``sample``/``ask`` propagate, so
    the engine records them with their own reason codes. A passing verdict's ``text`` and ``value``
    are applied to the candidate (as composites do for their parts), so a lone check that picks a
    better answer, such as self-consistency's majority, changes the output too."""
    try:
        out = v.validate(candidate)
        verdict = await out if inspect.isawaitable(out) else out
    except CascadeError:  # provider failures and budget exhaustion during samples: the engine decides
        raise
    except Exception as exc:  # a buggy check must escalate, not crash the request
        return Verdict(False, "validator_error", detail=f"{type(exc).__name__}: {exc}", validator=validator_name(v))
    if not isinstance(verdict, Verdict):
        return Verdict(
            False,
            "validator_error",
            detail=f"returned {type(verdict).__name__}, not Verdict",
            validator=validator_name(v),
        )
    if not verdict.validator:
        verdict = Verdict(
            verdict.passed,
            verdict.reason,
            verdict.score,
            verdict.detail,
            validator_name(v),
            verdict.value,
            verdict.text,
            verdict.children,
        )
    if verdict.passed:
        if verdict.text is not None:
            candidate.text = verdict.text
        if verdict.value is not None:
            candidate.parsed = verdict.value
    return verdict


class BaseValidator:
    """Mixin giving validators ``&`` and ``|``; subclasses set ``name`` and ``cost``."""

    name: str = ""
    cost: int = 0

    def __and__(self, other: Validator) -> AllOf:
        return AllOf(self, other)  # type: ignore[arg-type]

    def __or__(self, other: Validator) -> AnyOf:
        return AnyOf(self, other)  # type: ignore[arg-type]


class AllOf(BaseValidator):
    """Every check must pass. Cheapest first; stops at the first failure (no samples after a bad schema)."""

    name = "all"

    def __init__(self, *validators: Validator) -> None:
        flat: list[Validator] = []
        for v in validators:
            flat.extend(v.validators if isinstance(v, AllOf) else [v])
        self.validators: tuple[Validator, ...] = tuple(sorted(flat, key=validator_cost))  # sorted() is stable
        self.cost = max((validator_cost(v) for v in flat), default=0)

    async def validate(self, candidate: Candidate) -> Verdict:
        verdicts: list[Verdict] = []
        for v in self.validators:
            verdict = await run_validator(v, candidate)
            verdicts.append(verdict)
            if verdict.value is not None:
                candidate.parsed = verdict.value
            if verdict.text is not None:
                candidate.text = verdict.text
            if not verdict.passed:
                return Verdict(
                    False, verdict.reason, verdict.score, verdict.detail, self.name, children=tuple(verdicts)
                )
        return Verdict(True, "ok", None, "", self.name, candidate.parsed, None, tuple(verdicts))


class AnyOf(BaseValidator):
    """At least one check must pass. Cheapest first; stops at the first pass."""

    name = "any"

    def __init__(self, *validators: Validator) -> None:
        flat: list[Validator] = []
        for v in validators:
            flat.extend(v.validators if isinstance(v, AnyOf) else [v])
        self.validators: tuple[Validator, ...] = tuple(sorted(flat, key=validator_cost))
        self.cost = max((validator_cost(v) for v in flat), default=0)

    async def validate(self, candidate: Candidate) -> Verdict:
        verdicts: list[Verdict] = []
        for v in self.validators:
            verdict = await run_validator(v, candidate)
            verdicts.append(verdict)
            if verdict.passed:
                if verdict.value is not None:
                    candidate.parsed = verdict.value
                if verdict.text is not None:
                    candidate.text = verdict.text
                return Verdict(True, "ok", verdict.score, "", self.name, candidate.parsed, None, tuple(verdicts))
        last = verdicts[-1] if verdicts else Verdict(False, "no_validators")
        return Verdict(False, last.reason, last.score, last.detail, self.name, children=tuple(verdicts))


class Check(BaseValidator):
    """A plain function as a validator: it returns a bool, or a Verdict for a score and detail."""

    cost = 0

    def __init__(self, fn: Callable[[Candidate], bool | Verdict | Awaitable[bool | Verdict]], name: str) -> None:
        self.fn = fn
        self.name = name

    async def validate(self, candidate: Candidate) -> Verdict:
        out = self.fn(candidate)
        res = await out if inspect.isawaitable(out) else out
        if isinstance(res, Verdict):
            return res
        return Verdict(bool(res), "ok" if res else f"custom:{self.name}", validator=self.name)


def check(
    fn: Callable[[Candidate], bool | Verdict | Awaitable[bool | Verdict]] | None = None, *, name: str | None = None
) -> Any:
    """Wrap a function of the candidate into a validator; usable as ``check(fn)`` or ``@check(name=...)``.

    A failing check reports reason ``custom:<name>``.
    """

    def wrap(f: Callable[[Candidate], bool | Verdict | Awaitable[bool | Verdict]]) -> Check:
        return Check(f, name or str(getattr(f, "__name__", "check")))

    return wrap(fn) if fn is not None else wrap


def as_validator(validators: Validator | Sequence[Validator] | None) -> Validator | None:
    """Normalise a rung's ``validators=`` (one, a list meaning all-of, or None)."""
    if validators is None:
        return None
    if isinstance(validators, Sequence):
        items = list(validators)
        if not items:
            return AllOf()
        return items[0] if len(items) == 1 else AllOf(*items)
    return validators
