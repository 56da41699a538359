"""One request's walk up the ladder: gate, call, judge, escalate, and account for every call.

For each rung, cheapest first: the gates may pass it over (``cascade._gates``); otherwise the rung is
called (with retries, reserved against the request's budget, charged to its attempt), its answer judged
by the rung's checks (which see the earlier rungs' answers as ``Candidate.history``), re-asked with the
failed verdicts if the rung allows, and accepted or escalated. Every attempt and the request's end are
events in the log (``cascade._events``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._content import ContentPolicy
from ._errors import BudgetExhausted, ProviderError
from ._events import SCHEMA_VERSION, AttemptEvent, AttemptOutcome, Event, RequestEvent, rung_record, verdict_record
from ._fingerprint import ladder_fingerprint
from ._gates import GateContext, Gates
from ._ladder import Ladder, Rung
from ._ledger import Budget, TokenCounter, bound_call, charge, params_token_bound
from ._result import Attempt, CascadeResult
from ._retry import call_with_retries
from ._sinks import EventLog
from ._types import Candidate, Completion, CompletionRequest, Message, Step, Validator, Verdict
from .validators._base import AllOf, hard_checks, run_validator
from .validators._feedback import reask_messages
from .validators._schema import JsonSchema, schema_of


@dataclass(slots=True)
class Request:
    """One request in flight: what was asked, its ledger, its result so far and its trajectory."""

    id: str
    messages: list[Message]
    params: dict[str, Any]
    metadata: dict[str, Any]
    budget: Budget
    result: CascadeResult
    deadline: float | None = None
    history: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


class Walker:
    """Walks requests up one ladder. Built once per :class:`~cascade.Cascade` from its settings."""

    def __init__(
        self,
        ladder: Ladder,
        validators: Validator | None,
        gates: Gates,
        events: EventLog,
        content: ContentPolicy,
        token_counter: TokenCounter,
        sample_temperature: float,
        *,
        response_model: type[Any] | None = None,
    ) -> None:
        self.ladder = ladder
        self.validators = validators
        self.gates = gates
        self.events = events
        self.content = content
        self.token_counter = token_counter
        self.sample_temperature = sample_temperature
        self.rung_names = [r.name for r in ladder.rungs]
        self._top = ladder.top
        self._index = {name: i for i, name in enumerate(self.rung_names)}
        own = {r.name: self._default_check(r, validators) for r in ladder.rungs}
        self._checks = {name: _with_model(check, response_model) for name, check in own.items()}
        self._wire = {r.name: self._wire_for(r) for r in ladder.rungs}
        self.fingerprint = ladder_fingerprint(ladder, self._checks)

    def unchecked(self) -> list[str]:
        """Rungs below the top with no check at all: they accept every answer, so the rungs above them
        are only reached through errors."""
        return [r.name for r in self.ladder.rungs[:-1] if _is_unchecked(self.check_of(r))]

    def wire_of(self, rung: str) -> dict[str, Any]:
        """The params every call of the rung sends (before per-request overrides)."""
        return dict(self._wire[rung])

    def check_of(self, rung: Rung) -> Validator | None:
        """The checks that judge the rung's answers: its own, else the cascade's default."""
        return self._checks[rung.name]

    def _default_check(self, rung: Rung, default: Validator | None) -> Validator | None:
        """A rung's own checks as written; else the cascade's, less their soft parts on the top rung: a
        low confidence there could only throw away an answer already paid for (nothing is above it)."""
        if rung.validators is not None:
            return rung.validators  # type: ignore[no-any-return]
        return hard_checks(default) if rung is self._top else default

    def _wire_for(self, rung: Rung) -> dict[str, Any]:
        """The rung's request params, plus what its checks need: schema-constrained output when they
        require a JSON schema and the provider has a ``json_mode``, and each check's ``request_params``
        (logprobs for ``Confidence``). What the rung sets itself wins."""
        wire = rung.params.to_wire()
        check = self.check_of(rung)
        style = getattr(rung.provider, "json_mode", None)
        schema = schema_of(check)
        if style and schema is not None and "response_format" not in wire:
            wire["response_format"] = schema.response_format(style, strict=False)
        for part in _parts(check):  # e.g. Confidence needs logprobs
            for key, value in getattr(part, "request_params", {}).items():
                wire.setdefault(key, value)
        return wire

    # ------------------------------------------------------------------ the walk

    async def walk(self, req: Request) -> None:
        """Try the rungs in order until one accepts, an error ends the request, or the budget does.
        Caller errors and cancellation propagate; the request's event is then written by the caller."""
        for index, rung in enumerate(self.ladder.rungs):
            if await self._try_rung(req, index, rung) or req.result.outcome == "error":
                return
            if req.budget.overrun or _stopped_by_budget(req.result):
                return

    def _context(self, req: Request, index: int, rung: Rung) -> GateContext:
        return GateContext(
            request_id=req.id,
            rung=rung,
            index=index,
            is_top=index == len(self.rung_names) - 1,
            messages=req.messages,
            metadata=req.metadata,
            deadline=req.deadline,
            emit=self.events.emit,
        )

    async def _try_rung(self, req: Request, index: int, rung: Rung) -> bool:
        """Try one rung (with its re-asks); True when an answer is accepted."""
        ctx = self._context(req, index, rung)
        skip = self.gates.allow(ctx)
        if skip is not None:
            self._skip(req, rung, skip.kind, skip.reason, skip.message)
            return False
        check = self.check_of(rung)
        messages = list(req.messages)
        wire = {**self._wire[rung.name], **req.params}
        for reask in range(rung.reasks + 1):
            attempt = Attempt(index=len(req.result.attempts), rung=rung.name, model=rung.model)
            req.result.attempts.append(attempt)
            started = time.perf_counter()
            try:
                completion = await self._call(req, ctx, messages, wire, attempt)
                candidate = Candidate(
                    text=completion.text,
                    completion=completion,
                    messages=messages,
                    rung=rung.name,
                    model=rung.model,
                    params=wire,
                    sampler=lambda k, t=None, m=messages, a=attempt: self._samples(req, ctx, m, wire, a, k, t),
                    asker=lambda msgs, p, a=attempt: self._call(req, ctx, msgs, _merge(wire, p), a),  # type: ignore[misc]
                    history=tuple(req.history),
                    rung_index=index,
                    is_top=ctx.is_top,
                )
                verdict = await _judge(completion, check, candidate)
            except BudgetExhausted as exc:
                self._close_attempt(req, rung, attempt, started, "skipped", ["budget_exhausted"], detail=str(exc))
                return False
            except ProviderError as exc:
                self._close_attempt(req, rung, attempt, started, "error", [exc.reason], error=exc)
                self._remember(req, index, rung, None, None, (), False, None)
                if exc.kind == "caller":
                    raise
                return False
            except Exception as exc:  # a custom provider's or check's bug: recorded, then the request ends
                attempt.error = {"kind": "exception", "reason": "exception", "status": None, "message": describe(exc)}
                self._close_attempt(req, rung, attempt, started, "error", ["exception"])
                raise
            attempt.verdicts = verdict.leaves()
            attempt.output = candidate.text
            if verdict.passed:
                result = req.result
                result.output = candidate.text
                result.parsed = candidate.parsed if candidate.parsed is not None else verdict.value
                result.answered_by = rung.name
                result.accepted = True
                result.outcome = "accepted"
                self._close_attempt(req, rung, attempt, started, "accepted", [])
                self._remember(req, index, rung, candidate.text, result.parsed, attempt.verdicts, True, completion)
                self.gates.on_visit(ctx, True)
                return True
            reasons = [v.reason for v in attempt.verdicts if not v.passed] or [verdict.reason]
            if req.budget.overrun:
                reasons.append("budget_overrun")
            last = reask == rung.reasks or req.budget.overrun
            self._close_attempt(req, rung, attempt, started, "escalated" if last else "reask", reasons)
            if last:
                self._remember(req, index, rung, candidate.text, candidate.parsed, attempt.verdicts, False, completion)
                self.gates.on_visit(ctx, False)
                return False
            messages = reask_messages(messages, candidate.text, attempt.verdicts)
        return False

    def _remember(
        self,
        req: Request,
        index: int,
        rung: Rung,
        text: str | None,
        parsed: Any,
        verdicts: Sequence[Verdict],
        accepted: bool,
        completion: Completion | None,
    ) -> None:
        """Add the rung's judged answer to the request's trajectory, for the checks of later rungs."""
        score = next((v.score for v in verdicts if v.score is not None), None)
        if score is None and completion is not None:
            score = completion.confidence
        req.history.append(Step(rung.name, index, rung.model, text, parsed, tuple(verdicts), accepted, score))

    def _skip(self, req: Request, rung: Rung, kind: str, reason: str, message: str) -> None:
        """Record a rung passed over without a call: an attempt ``skipped`` with ``reason``, cost 0."""
        attempt = Attempt(index=len(req.result.attempts), rung=rung.name, model=rung.model)
        req.result.attempts.append(attempt)
        attempt.error = {"kind": kind, "reason": reason, "status": None, "message": message}
        self._close_attempt(req, rung, attempt, time.perf_counter(), "skipped", [reason])

    async def _call(
        self, req: Request, ctx: GateContext, messages: Sequence[Message], wire: dict[str, Any], attempt: Attempt
    ) -> Completion:
        """One call on the rung, with retries, reserved against the budget and charged to the attempt."""
        rung = ctx.rung
        prompt_tokens = self.token_counter(messages) + params_token_bound(wire)
        wire, worst = bound_call(req.budget, prompt_tokens, wire, rung.price_in, rung.price_out)
        if not req.budget.reserve(worst):
            raise BudgetExhausted(_budget_message(req, rung, worst))
        return await self._invoke(req, ctx, messages, wire, attempt, prompt_tokens, worst)

    async def _samples(
        self,
        req: Request,
        ctx: GateContext,
        messages: Sequence[Message],
        wire: dict[str, Any],
        attempt: Attempt,
        k: int,
        temperature: float | None = None,
    ) -> list[Completion]:
        """k more answers from the same rung, at once, with distinct seeds; all k reserved up front, each
        bounded by its share of what is left."""
        if k <= 0:
            return []
        rung = ctx.rung
        temperature = temperature or wire.get("temperature") or self.sample_temperature
        seed = int(wire.get("seed") or 0)
        prompt_tokens = self.token_counter(messages) + params_token_bound(wire)
        wires = [{**wire, "temperature": temperature, "seed": seed + i + 1} for i in range(k)]
        bounded = [bound_call(req.budget, prompt_tokens, w, rung.price_in, rung.price_out, k) for w in wires]
        total = sum(worst for _, worst in bounded)
        if not req.budget.reserve(total):
            raise BudgetExhausted(_budget_message(req, rung, total))
        outs = await asyncio.gather(
            *(self._invoke(req, ctx, messages, w, attempt, prompt_tokens, worst) for w, worst in bounded),
            return_exceptions=True,
        )
        for out in outs:
            if isinstance(out, BaseException):
                raise out
        return [o for o in outs if isinstance(o, Completion)]

    async def _invoke(
        self,
        req: Request,
        ctx: GateContext,
        messages: Sequence[Message],
        wire: dict[str, Any],
        attempt: Attempt,
        prompt_tokens: int,
        worst: float,
    ) -> Completion:
        rung = ctx.rung
        request = CompletionRequest(rung.model, messages, wire)
        started = time.perf_counter()
        budget = req.budget
        calls = 0

        async def once() -> Completion:
            """One call. The first was reserved by the caller; each retry reserves its own bound, and a
            call that fails after it may have been billed is charged that bound."""
            nonlocal calls
            if calls and not budget.reserve(worst):
                raise _NoRetry()
            calls += 1
            attempt.calls += 1
            try:
                return await rung.provider.complete(request)
            except ProviderError as exc:
                if exc.maybe_billed or exc.reason == "bad_response":
                    budget.settle(worst, worst)
                    attempt.cost_usd += worst
                    attempt.charged_at_bound = True
                else:
                    budget.settle(worst, 0.0)
                raise
            except BaseException:
                budget.settle(worst, 0.0)
                raise

        last: list[ProviderError] = []

        def on_retry(exc: ProviderError) -> None:
            attempt.retries += 1
            last[:] = [exc]

        try:
            completion = await call_with_retries(once, rung.retry, on_retry)
        except _NoRetry:  # the budget cannot pay for another try: the last failure stands
            self.gates.on_call(ctx, last[0], time.perf_counter() - started)
            raise last[0] from None
        except ProviderError as exc:
            self.gates.on_call(ctx, exc, time.perf_counter() - started)
            raise
        self.gates.on_call(ctx, None, time.perf_counter() - started)
        tokens_in, tokens_out, cost, at_bound = charge(
            completion, prompt_tokens, wire, rung.price_in, rung.price_out, worst
        )
        if budget.settle(worst, cost):
            attempt.budget_overrun = True
        attempt.charged_at_bound |= at_bound
        attempt.tokens_in += tokens_in
        attempt.tokens_out += tokens_out
        attempt.cost_usd += cost
        return completion

    # ------------------------------------------------------------------ accounting and events

    def _close_attempt(
        self,
        req: Request,
        rung: Rung,
        attempt: Attempt,
        started: float,
        outcome: AttemptOutcome,
        reasons: list[str],
        *,
        error: ProviderError | None = None,
        detail: str = "",
    ) -> None:
        attempt.outcome = outcome
        attempt.reasons = reasons
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        if error is not None:
            attempt.error = error.as_dict()
        elif detail:
            attempt.error = {"kind": "budget", "reason": reasons[0], "status": None, "message": detail}
        req.result.cost_usd += attempt.cost_usd
        if self.events.sink is None:
            return
        event: AttemptEvent = {
            "event": "attempt",
            "v": SCHEMA_VERSION,
            "request_id": req.id,
            "attempt": attempt.index,
            "rung": rung.name,
            "rung_index": self._index[rung.name],
            "model": rung.model,
            "outcome": outcome,
            "reasons": reasons,
            "verdicts": [verdict_record(v.validator, v.passed, v.reason, v.score, v.detail) for v in attempt.verdicts],
            "tokens_in": attempt.tokens_in,
            "tokens_out": attempt.tokens_out,
            "cost_usd": attempt.cost_usd,
            "latency_ms": round(attempt.latency_ms, 3),
            "calls": attempt.calls,
            "retries": attempt.retries,
            "price_in": rung.price_in,
            "price_out": rung.price_out,
            "error": attempt.error,  # type: ignore[typeddict-item]
            "metadata": req.metadata,
            "charged_at_bound": attempt.charged_at_bound,
            "budget_overrun": attempt.budget_overrun,
        }
        line: Event = dict(event)
        if rung.price_source is not None:
            line["price_source"] = rung.price_source
        self.content.add(line, "output", attempt.output)
        if not self.events.write(line):
            req.result.log_errors += 1

    def finish(self, req: Request, best_effort: bool, error: BaseException | None = None) -> None:
        """Close the request's result and write its ``request`` event."""
        result = req.result
        result.latency_ms = (time.perf_counter() - req.started) * 1000
        result.cost_usd = sum(a.cost_usd for a in result.attempts)
        rungs_tried = len(dict.fromkeys(a.rung for a in result.attempts))
        result.escalations = max(0, rungs_tried - 1)
        if error is not None:
            result.outcome = "error"
            result.accepted = False
            result.error = describe(error)
        elif not result.accepted:
            result.outcome = "exhausted"
            if best_effort:
                last = next((a for a in reversed(result.attempts) if a.output is not None), None)
                if last is not None:
                    result.output, result.answered_by = last.output, last.rung
        last_reason = next((a.reasons[-1] for a in reversed(result.attempts) if a.reasons), None)
        if error is not None and last_reason is None:
            last_reason = "cancelled" if isinstance(error, asyncio.CancelledError) else "error"
        if result.attempts:
            last_rung = self.ladder[result.attempts[-1].rung]
            self.gates.on_finish(self._context(req, self._index[last_rung.name], last_rung), result)
        if self.events.sink is None:
            return
        top = self._top
        event: RequestEvent = {
            "event": "request",
            "v": SCHEMA_VERSION,
            "request_id": req.id,
            "outcome": result.outcome,
            "accepted": result.accepted,
            "answered_by": result.answered_by if result.accepted else None,
            "escalations": result.escalations,
            "attempts": len(result.attempts),
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
            "cost_usd": result.cost_usd,
            "latency_ms": round(result.latency_ms, 3),
            "reason": None if result.accepted else last_reason,
            "error": result.error,
            "budget_usd": req.budget.cap,
            "top_rung": rung_record(top.name, top.model, top.price_in, top.price_out),
            "rungs": self.rung_names,
            "metadata": req.metadata,
            "budget_overrun": result.budget_overrun,
            "fingerprint": self.fingerprint,
        }
        line: Event = dict(event)
        self.content.add(line, "prompt", req.messages)
        self.content.add(line, "output", result.output)
        if not self.events.write(line):
            result.log_errors += 1


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, as results and events carry it."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _judge(completion: Completion, check: Validator | None, candidate: Candidate) -> Verdict:
    """Truncated or filtered output fails before any validator runs; then the rung's checks."""
    if completion.finish_reason == "length":
        return Verdict(False, "truncated", detail="finish_reason=length: output hit max_tokens", validator="engine")
    if completion.finish_reason == "content_filter":
        return Verdict(False, "content_policy", detail="finish_reason=content_filter", validator="engine")
    if check is None:
        return Verdict(True, "ok", validator="none")
    return await run_validator(check, candidate)


def _parts(check: Any) -> list[Any]:
    """The individual checks inside a composite (``&``, ``|``, lists), or the check itself."""
    if check is None:
        return []
    inner = getattr(check, "validators", None)
    if isinstance(inner, tuple):
        return [leaf for part in inner for leaf in _parts(part)]
    return [check]


def _with_model(check: Validator | None, model: type[Any] | None) -> Validator | None:
    """The rung's checks, plus ``JsonSchema(model)`` when the cascade has a response model and the
    checks do not already require that model's schema."""
    if model is None:
        return check
    present = schema_of(check)
    if present is not None and present.model is model:
        return check
    schema = JsonSchema(model)
    return schema if check is None else AllOf(schema, check)


def _is_unchecked(check: Validator | None) -> bool:
    return check is None or (isinstance(getattr(check, "validators", None), tuple) and not _parts(check))


def _merge(wire: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Params for an extra call: overrides win; an override of None removes the rung's value."""
    out = {**wire, **overrides}
    return {k: v for k, v in out.items() if v is not None}


class _NoRetry(Exception):
    """A retry that the request's budget cannot reserve."""


def _stopped_by_budget(result: CascadeResult) -> bool:
    return bool(result.attempts) and result.attempts[-1].reasons == ["budget_exhausted"]


def _budget_message(req: Request, rung: Rung, worst: float) -> str:
    return (
        f"rung {rung.name!r}: worst-case cost ${worst:.8f} exceeds the ${max(req.budget.remaining, 0):.8f} "
        f"left of budget_usd={req.budget.cap}"
    )
