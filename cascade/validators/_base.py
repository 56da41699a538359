"""Running checks and composing them (``a & b``, ``a | b``) in the style of tenacity.

A validator looks at one candidate answer and returns a :class:`~cascade.Verdict` (the protocol is in
``cascade._types``). Any object with a ``validate(candidate)`` method (sync or async) is a validator;
:func:`check` wraps a plain function.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._errors import CascadeError
from .._types import Candidate, Validator, Verdict

__all__ = [
    "AllOf",
    "AnyOf",
    "BaseValidator",
    "Candidate",
    "Check",
    "Validator",
    "Verdict",
    "as_validator",
    "check",
    "run_validator",
    "validator_cost",
    "validator_name",
]


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
