"""Running checks and composing them (``a & b``, ``a | b``) in the style of tenacity.

A validator looks at one candidate answer and returns a :class:`~cascade.Verdict` (the protocol is in
``cascade._types``). Any object with a ``validate(candidate)`` method (sync or async) is a validator;
:func:`check` wraps a plain function.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import overload

from .._errors import CascadeError
from .._types import Candidate, Validator, Verdict

CheckFn = Callable[[Candidate], bool | Verdict | Awaitable[bool | Verdict]]
"""A function of the candidate that :func:`check` turns into a validator."""

__all__ = [
    "AllOf",
    "AnyOf",
    "BaseValidator",
    "Candidate",
    "Check",
    "CheckFn",
    "Validator",
    "Verdict",
    "check",
    "hard_checks",
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
    """Mixin giving validators ``&`` and ``|``; subclasses set ``name``, ``cost`` and ``soft``.

    A *soft* check (confidence, agreement) fails when a stronger model may do better; a hard one
    (schema, label set) when the answer is unusable. Soft checks given on the ``Cascade`` do not judge
    the top rung, where nothing is left to escalate to (see :func:`hard_checks`)."""

    name: str = ""
    cost: int = 0
    soft: bool = False

    def validate(self, candidate: Candidate) -> Verdict | Awaitable[Verdict]:
        """Judge one answer (subclasses implement it, usually as ``async def``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement validate(candidate)")

    def __and__(self, other: Validator) -> AllOf:
        return AllOf(self, other)

    def __or__(self, other: Validator) -> AnyOf:
        return AnyOf(self, other)


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


@overload
def check(fn: CheckFn, *, name: str | None = None) -> Check: ...


@overload
def check(fn: None = None, *, name: str | None = None) -> Callable[[CheckFn], Check]: ...


def check(fn: CheckFn | None = None, *, name: str | None = None) -> Check | Callable[[CheckFn], Check]:
    """Wrap a function of the candidate into a validator; usable as ``check(fn)`` or ``@check(name=...)``.

    A failing check reports reason ``custom:<name>``.
    """

    def wrap(f: CheckFn) -> Check:
        return Check(f, name or str(getattr(f, "__name__", "check")))

    return wrap(fn) if fn is not None else wrap


def hard_checks(check: Validator | None) -> Validator | None:
    """``check`` without its soft parts (``soft = True``: confidence, agreement) at the top level of an
    all-of: what a cascade-wide check asks of the top rung, where a soft failure has nowhere to go."""
    if check is None or getattr(check, "soft", False):
        return None if check is None else AllOf()
    if isinstance(check, AllOf):
        hard = [v for v in check.validators if not getattr(v, "soft", False)]
        if len(hard) == len(check.validators):
            return check
        return hard[0] if len(hard) == 1 else AllOf(*hard)
    return check
