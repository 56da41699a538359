"""The engine: walk the ladder cheapest first, check each answer, escalate on failure, account for all."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pydantic import ValidationError

from ._breaker import Breakers, CircuitBreaker
from ._errors import BudgetExhausted, CascadeError, CascadeExhausted, ConfigError, ProviderError, RequestError
from ._events import ContentPolicy, Event, EventLog, EventSink, LogContent, Processor, add_timestamp, make_sink
from ._idle import IdleRungs, SkipIdle
from ._ladder import Ladder, RequestParams, Rung
from ._ledger import Budget, TokenCounter, call_cost, prompt_token_bound
from ._result import Attempt, CascadeResult
from ._resume import Resume
from ._retry import call_with_retries
from ._types import Completion, CompletionRequest, Message
from .validators._base import Candidate, Validator, Verdict, as_validator, run_validator
from .validators._feedback import reask_messages
from .validators._schema import schema_of

OnExhausted = Literal["raise", "best_effort"]
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
MAX_TOKENS_UNDER_BUDGET = 4096
"""``max_tokens`` sent under a budget when the rung sets none (the budget may afford less)."""
_IDLE = "no answer accepted on this rung for a while: skipped without a call, probed now and then"
_COOLING = "circuit open after repeated failures: rung skipped without a call until its cool-down ends"


@dataclass(slots=True)
class _Request:
    id: str
    messages: list[Message]
    params: dict[str, Any]
    metadata: dict[str, Any]
    budget: Budget
    result: CascadeResult
    started: float = field(default_factory=time.perf_counter)


class Cascade:
    """Sends each request to the cheapest rung first and escalates until an answer passes its checks.

    ``validators`` is the default check for rungs that set none. ``budget_usd`` caps the spend of each
    request (see ``cascade._ledger`` for the exact guarantee). ``on_exhausted="raise"`` raises
    :class:`CascadeExhausted` (carrying the result) when no rung accepts; ``"best_effort"`` returns the
    strongest rung's answer with ``accepted=False``. ``log`` is a JSONL path, an ``EventSink``, a
    structlog logger, or a list of these. Prompts and outputs reach the log only if ``log_content``
    says so (``"hash"`` is an HMAC keyed by ``log_hash_key``). ``breaker`` is the default
    :class:`CircuitBreaker` of rungs that set none (see ``cascade._breaker``). ``skip_idle`` (a
    :class:`SkipIdle`) skips a rung below the top that has stopped accepting, probing it now and then
    (see ``cascade._idle``).
    """

    def __init__(
        self,
        ladder: Ladder | Sequence[Rung],
        *,
        validators: Validator | Sequence[Validator] | None = None,
        budget_usd: float | None = None,
        on_exhausted: OnExhausted = "raise",
        log: Any = None,
        log_content: LogContent = "none",
        log_hash_key: str | bytes | None = None,
        processors: Sequence[Processor] | None = None,
        token_counter: TokenCounter = prompt_token_bound,
        sample_temperature: float = 0.7,
        breaker: CircuitBreaker | None = None,
        skip_idle: SkipIdle | None = None,
    ) -> None:
        self.ladder = ladder if isinstance(ladder, Ladder) else Ladder(list(ladder))
        self.validators = as_validator(validators)
        self.budget_usd = _check_budget(budget_usd)
        if on_exhausted not in ("raise", "best_effort"):
            raise ConfigError(f"on_exhausted: expected 'raise' or 'best_effort', got {on_exhausted!r}")
        self.on_exhausted = on_exhausted
        self.content = ContentPolicy(log_content, log_hash_key)
        self.sink: EventSink | None = make_sink(log)
        self.events = EventLog(self.sink, processors if processors is not None else (add_timestamp,))
        self.token_counter = token_counter
        if not 0 < sample_temperature <= 2:
            raise ConfigError(f"sample_temperature: expected a value in (0, 2], got {sample_temperature!r}")
        self.sample_temperature = sample_temperature
        self._top = self.ladder.top
        self._rung_names = [r.name for r in self.ladder.rungs]
        self._rung_index = {name: i for i, name in enumerate(self._rung_names)}
        self._rung_wire = {r.name: self._wire_for(r) for r in self.ladder.rungs}
        self._local = threading.local()
        self.breakers = Breakers.for_rungs(self.ladder.rungs, breaker, self.events.emit)
        self.idle = IdleRungs(self._rung_names[:-1], skip_idle, self.events.emit)

    def __repr__(self) -> str:
        return f"Cascade(rungs={self._rung_names!r}, budget_usd={self.budget_usd!r}, log={self.sink!r})"

    # ------------------------------------------------------------------ public API

    async def run(
        self,
        messages: Sequence[Message],
        *,
        metadata: Mapping[str, Any] | None = None,
        budget_usd: float | None = None,
        request_id: str | None = None,
        **params: Any,
    ) -> CascadeResult:
        """Answer one request. ``params`` (temperature, max_tokens, ...) override every rung's."""
        req = self._new_request(messages, metadata, budget_usd, request_id, params)
        try:
            for index, rung in enumerate(self.ladder.rungs):
                if await self._try_rung(req, index, rung) or req.result.outcome == "error":
                    break
                if req.budget.overrun or _stopped_by_budget(req.result):
                    break
        except BaseException as exc:  # caller errors, cancellation, bugs: the request event is still written
            self._finish(req, error=exc)
            raise
        self._finish(req)
        if not req.result.accepted and self.on_exhausted == "raise":
            raise CascadeExhausted(req.result)
        return req.result

    def run_sync(self, messages: Sequence[Message], **kwargs: Any) -> CascadeResult:
        """Blocking ``run`` for code without an event loop (one private loop per thread, reused)."""
        return self._loop().run_until_complete(self.run(messages, **kwargs))

    async def imap(
        self, inputs: Iterable[Any], *, concurrency: int = 16, resume_from: str | os.PathLike[str] | None = None
    ) -> AsyncIterator[tuple[int, CascadeResult]]:
        """Yield ``(index, result)`` as requests finish, with at most ``concurrency`` in flight and
        memory bounded by that, not by the batch. Each item is a message list or a dict with
        ``messages`` and optionally ``metadata``, ``request_id`` and request params. A failing item
        yields a result with ``outcome="exhausted"`` or ``"error"``; it never stops the batch.
        ``resume_from`` (a JSONL log of an earlier run) skips items that already ended there
        (see ``cascade._resume``)."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
        items = enumerate(inputs)
        queue: asyncio.Queue[tuple[int, CascadeResult] | None] = asyncio.Queue(maxsize=concurrency * 2)
        resume = None if resume_from is None else Resume.load(resume_from)
        if resume is not None:
            self.events.emit(resume.summary_event())

        async def worker() -> None:
            try:
                for index, item in items:
                    if resume is not None:
                        item, done = resume.prepare(item)  # the item with its stable request id
                        if done is not None:
                            await queue.put((index, done))
                            continue
                    await queue.put((index, await self._run_item(item)))
            finally:
                await queue.put(None)

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        done = 0
        try:
            while done < len(workers):
                got = await queue.get()
                if got is None:
                    done += 1
                else:
                    yield got
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def map(
        self, inputs: Iterable[Any], *, concurrency: int = 16, resume_from: str | os.PathLike[str] | None = None
    ) -> list[CascadeResult]:
        """Run a batch; results in input order, per-item failures isolated (see ``imap``)."""
        out: list[CascadeResult | None] = []  # a list, not a dict by index: ~100 bytes less per result
        async for index, result in self.imap(inputs, concurrency=concurrency, resume_from=resume_from):
            if index >= len(out):
                out.extend([None] * (index + 1 - len(out)))
            out[index] = result
        return cast("list[CascadeResult]", out)  # imap yields every index exactly once

    def map_sync(
        self, inputs: Iterable[Any], *, concurrency: int = 16, resume_from: str | os.PathLike[str] | None = None
    ) -> list[CascadeResult]:
        return self._loop().run_until_complete(self.map(inputs, concurrency=concurrency, resume_from=resume_from))

    async def aclose(self) -> None:
        """Close the providers' connections of the running loop and the log sink."""
        for rung in self.ladder.rungs:
            await rung.provider.aclose()
        self.events.close()

    def close(self) -> None:
        """Close what ``run_sync`` opened (its loop and connections) and the log sink."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.run_until_complete(self.aclose())
            loop.close()
        self.events.close()

    async def __aenter__(self) -> Cascade:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Cascade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wire_for(self, rung: Rung) -> dict[str, Any]:
        """The rung's request params, plus what its checks need: schema-constrained output when they
        require a JSON schema and the provider has a ``json_mode``, and each check's ``request_params``
        (logprobs for ``Confidence``). What the rung sets itself wins."""
        wire = rung.params.to_wire()
        check = rung.validators if rung.validators is not None else self.validators
        style = getattr(rung.provider, "json_mode", None)
        schema = schema_of(check)
        if style and schema is not None and "response_format" not in wire:
            wire["response_format"] = schema.response_format(style, strict=False)
        for part in _parts(check):  # e.g. Confidence needs logprobs
            for key, value in getattr(part, "request_params", {}).items():
                wire.setdefault(key, value)
        return wire

    # ------------------------------------------------------------------ one request

    def _new_request(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, Any] | None,
        budget_usd: float | None,
        request_id: str | None,
        params: dict[str, Any],
    ) -> _Request:
        checked = _check_messages(messages)
        try:
            overrides = RequestParams(**params).to_wire() if params else {}
        except ValidationError as exc:
            raise RequestError(_pydantic_message("run", exc)) from None
        if metadata is not None and not isinstance(metadata, Mapping):
            raise RequestError(f"metadata: expected a mapping, got {metadata!r}")
        cap = _check_budget(budget_usd) if budget_usd is not None else self.budget_usd
        rid = request_id or uuid.uuid4().hex
        meta = dict(metadata or {})
        return _Request(rid, checked, overrides, meta, Budget(cap), CascadeResult(request_id=rid, metadata=meta))

    async def _try_rung(self, req: _Request, index: int, rung: Rung) -> bool:
        """Try one rung (with its re-asks); True when an answer is accepted."""
        if not self.breakers.allow(rung.name):  # circuit open: skip without a call (cascade._breaker)
            self._skip(req, rung, "breaker", "rung_cooling_down", _COOLING)
            return False
        if not self.idle.allow(rung.name):  # accepted nothing for a while: skip without a call (cascade._idle)
            self._skip(req, rung, "idle", "rung_idle", _IDLE)
            return False
        check = rung.validators if rung.validators is not None else self.validators
        messages = list(req.messages)
        wire = {**self._rung_wire[rung.name], **req.params}
        for reask in range(rung.reasks + 1):
            attempt = Attempt(index=len(req.result.attempts), rung=rung.name, model=rung.model)
            req.result.attempts.append(attempt)
            started = time.perf_counter()
            try:
                completion = await self._call(req, rung, messages, wire, attempt)
                candidate = Candidate(
                    text=completion.text,
                    completion=completion,
                    messages=messages,
                    rung=rung.name,
                    model=rung.model,
                    params=wire,
                    sampler=lambda k, m=messages, a=attempt: self._samples(req, rung, m, wire, a, k),  # type: ignore[misc]
                    asker=lambda msgs, p, a=attempt: self._call(req, rung, msgs, _merge(wire, p), a),  # type: ignore[misc]
                )
                verdict = await _judge(completion, check, candidate)
            except BudgetExhausted as exc:
                self._close_attempt(req, rung, attempt, started, "skipped", ["budget_exhausted"], detail=str(exc))
                return False
            except ProviderError as exc:
                if exc.kind == "caller":
                    self._close_attempt(req, rung, attempt, started, "error", [exc.reason], error=exc)
                    raise
                self._close_attempt(req, rung, attempt, started, "error", [exc.reason], error=exc)
                return False
            attempt.verdicts = verdict.leaves()
            attempt.output = candidate.text
            attempt.tool_calls = completion.tool_calls
            if verdict.passed:
                req.result.output = candidate.text
                req.result.tool_calls = completion.tool_calls
                req.result.parsed = candidate.parsed if candidate.parsed is not None else verdict.value
                req.result.answered_by = rung.name
                req.result.accepted = True
                req.result.outcome = "accepted"
                self._close_attempt(req, rung, attempt, started, "accepted", [])
                self.idle.record(rung.name, accepted=True)
                return True
            reasons = [v.reason for v in attempt.verdicts if not v.passed] or [verdict.reason]
            if req.budget.overrun:
                reasons.append("budget_overrun")
            last = reask == rung.reasks or req.budget.overrun
            self._close_attempt(req, rung, attempt, started, "escalated" if last else "reask", reasons)
            if last:
                self.idle.record(rung.name, accepted=False)
                return False
            messages = reask_messages(messages, candidate.text, attempt.verdicts)
        return False

    def _skip(self, req: _Request, rung: Rung, kind: str, reason: str, message: str) -> None:
        """Record a rung passed over without a call: an attempt ``skipped`` with ``reason``, cost 0."""
        attempt = Attempt(index=len(req.result.attempts), rung=rung.name, model=rung.model)
        req.result.attempts.append(attempt)
        attempt.error = {"kind": kind, "reason": reason, "status": None, "message": message}
        self._close_attempt(req, rung, attempt, time.perf_counter(), "skipped", [reason])

    async def _call(
        self, req: _Request, rung: Rung, messages: Sequence[Message], wire: dict[str, Any], attempt: Attempt
    ) -> Completion:
        """One call on the rung, with retries, reserved against the budget and charged to the attempt."""
        wire, bound_in, worst = self._bound(req, rung, messages, wire)
        if not req.budget.reserve(worst):
            raise BudgetExhausted(_budget_message(req, rung, worst))
        return await self._invoke(req, rung, messages, wire, attempt, bound_in, worst)

    async def _samples(
        self, req: _Request, rung: Rung, messages: Sequence[Message], wire: dict[str, Any], attempt: Attempt, k: int
    ) -> list[Completion]:
        """k more answers from the same rung, at once, with distinct seeds; all k reserved up front."""
        if k <= 0:
            return []
        temperature = wire.get("temperature") or self.sample_temperature
        seed = int(wire.get("seed") or 0)
        wires = [{**wire, "temperature": temperature, "seed": seed + i + 1} for i in range(k)]
        bounded = [self._bound(req, rung, messages, w) for w in wires]
        total = sum(b[2] for b in bounded)
        if not req.budget.reserve(total):
            raise BudgetExhausted(_budget_message(req, rung, total))
        outs = await asyncio.gather(
            *(self._invoke(req, rung, messages, w, attempt, b_in, worst) for w, b_in, worst in bounded),
            return_exceptions=True,
        )
        for out in outs:
            if isinstance(out, BaseException):
                raise out
        return [o for o in outs if isinstance(o, Completion)]

    def _bound(
        self, req: _Request, rung: Rung, messages: Sequence[Message], wire: dict[str, Any]
    ) -> tuple[dict[str, Any], int, float]:
        """The params to send, the prompt-token bound and the worst-case cost of the call."""
        bound_in = self.token_counter(messages)
        max_tokens = wire.get("max_tokens")
        if req.budget.cap is not None and max_tokens is None and rung.price_out > 0:
            affordable = (req.budget.remaining * 1_000_000 - bound_in * rung.price_in) / rung.price_out
            max_tokens = math.floor(max(0.0, min(float(MAX_TOKENS_UNDER_BUDGET), affordable)))
            if max_tokens < 1:  # not even one output token is affordable: the call cannot be made
                return wire, bound_in, math.inf
            wire = {**wire, "max_tokens": max_tokens}
        worst = call_cost(bound_in, int(max_tokens or 0), rung.price_in, rung.price_out)
        return wire, bound_in, worst

    async def _invoke(
        self,
        req: _Request,
        rung: Rung,
        messages: Sequence[Message],
        wire: dict[str, Any],
        attempt: Attempt,
        bound_in: int,
        worst: float,
    ) -> Completion:
        request = CompletionRequest(rung.model, messages, wire)

        async def once() -> Completion:
            attempt.calls += 1
            return await rung.provider.complete(request)

        def on_retry(_exc: ProviderError) -> None:
            attempt.retries += 1

        try:
            completion = await call_with_retries(once, rung.retry, on_retry)
        except ProviderError as exc:
            self.breakers.record(rung.name, exc)
            # A 200 we could not use was probably billed: charge its bound rather than nothing.
            charged = worst if exc.reason == "bad_response" else 0.0
            req.budget.settle(worst, charged)
            attempt.cost_usd += charged
            raise
        except BaseException:
            req.budget.settle(worst, 0.0)
            raise
        self.breakers.record(rung.name, None)
        tokens_in, tokens_out = completion.tokens_in, completion.tokens_out
        if tokens_in < 0 or tokens_out < 0:  # no usage reported: charge an upper bound
            tokens_in = bound_in
            cap = wire.get("max_tokens")
            tokens_out = len(completion.text.encode("utf-8")) + 1
            if isinstance(cap, int):
                tokens_out = min(tokens_out, cap)
        cost = (
            completion.cost_usd
            if completion.cost_usd is not None
            else call_cost(tokens_in, tokens_out, rung.price_in, rung.price_out)
        )
        req.budget.settle(worst, cost)
        attempt.tokens_in += tokens_in
        attempt.tokens_out += tokens_out
        attempt.cost_usd += cost
        return completion

    # ------------------------------------------------------------------ accounting and events

    def _close_attempt(
        self,
        req: _Request,
        rung: Rung,
        attempt: Attempt,
        started: float,
        outcome: Any,
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
        event: Event = {
            "event": "attempt",
            "v": 1,
            "request_id": req.id,
            "attempt": attempt.index,
            "rung": rung.name,
            "rung_index": self._rung_index[rung.name],
            "model": rung.model,
            "outcome": outcome,
            "reasons": reasons,
            "verdicts": [v.as_dict() for v in attempt.verdicts],
            "tokens_in": attempt.tokens_in,
            "tokens_out": attempt.tokens_out,
            "cost_usd": attempt.cost_usd,
            "latency_ms": round(attempt.latency_ms, 3),
            "calls": attempt.calls,
            "retries": attempt.retries,
            "price_in": rung.price_in,
            "price_out": rung.price_out,
            "error": attempt.error,
            "metadata": req.metadata,
        }
        self.content.add(event, "output", attempt.output)
        self.events.emit(event)

    def _finish(self, req: _Request, error: BaseException | None = None) -> None:
        result = req.result
        result.latency_ms = (time.perf_counter() - req.started) * 1000
        result.cost_usd = sum(a.cost_usd for a in result.attempts)
        rungs_tried = len(dict.fromkeys(a.rung for a in result.attempts))
        result.escalations = max(0, rungs_tried - 1)
        if error is not None:
            result.outcome = "error"
            result.accepted = False
            result.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        elif not result.accepted:
            result.outcome = "exhausted"
            if self.on_exhausted == "best_effort":
                last = next((a for a in reversed(result.attempts) if a.output is not None), None)
                if last is not None:
                    result.output, result.answered_by, result.tool_calls = last.output, last.rung, last.tool_calls
        last_reason = next((a.reasons[-1] for a in reversed(result.attempts) if a.reasons), None)
        if error is not None and last_reason is None:
            last_reason = "cancelled" if isinstance(error, asyncio.CancelledError) else "error"
        if self.events.sink is None:
            return
        top = self._top
        event: Event = {
            "event": "request",
            "v": 1,
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
            "top_rung": {"name": top.name, "model": top.model, "price_in": top.price_in, "price_out": top.price_out},
            "rungs": self._rung_names,
            "metadata": req.metadata,
        }
        self.content.add(event, "prompt", req.messages)
        self.content.add(event, "output", result.output)
        self.events.emit(event)

    async def _run_item(self, item: Any) -> CascadeResult:
        try:
            if isinstance(item, Mapping):
                kwargs = dict(item)
                messages = kwargs.pop("messages", None)
                if messages is None:
                    raise RequestError(f"map item: a dict item needs a 'messages' key, got keys {sorted(item)}")
                return await self.run(messages, **kwargs)
            return await self.run(item)
        except CascadeExhausted as exc:
            return exc.result
        except CascadeError as exc:
            return CascadeResult(request_id=uuid.uuid4().hex, outcome="error", error=f"{type(exc).__name__}: {exc}")

    def _loop(self) -> asyncio.AbstractEventLoop:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("run_sync/map_sync cannot run inside an event loop; use `await cascade.run(...)`")
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            self._local.loop = loop
        return loop


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


def _merge(wire: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Params for an extra call: overrides win; an override of None removes the rung's value."""
    out = {**wire, **overrides}
    return {k: v for k, v in out.items() if v is not None}


def _stopped_by_budget(result: CascadeResult) -> bool:
    return bool(result.attempts) and result.attempts[-1].reasons == ["budget_exhausted"]


def _budget_message(req: _Request, rung: Rung, worst: float) -> str:
    return (
        f"rung {rung.name!r}: worst-case cost ${worst:.8f} exceeds the ${max(req.budget.remaining, 0):.8f} "
        f"left of budget_usd={req.budget.cap}"
    )


def _check_budget(budget: Any) -> float | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 0:
        raise ConfigError(f"budget_usd: expected a finite number >= 0 (USD), got {budget!r}")
    return float(budget)


def _check_messages(messages: Any) -> list[Message]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise RequestError(
            f"messages: expected a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__} "
            f"{str(messages)[:80]!r}"
        )
    if not messages:
        raise RequestError("messages: expected at least one message, got []")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise RequestError(f"messages[{i}]: expected a dict with 'role' and 'content', got {m!r:.80}")
        role = m.get("role")
        if role not in _ROLES:
            raise RequestError(f"messages[{i}].role: expected one of {sorted(_ROLES)}, got {role!r}")
        content = m.get("content")
        if content is None and role != "assistant":
            raise RequestError(f"messages[{i}].content: missing (None) for role {role!r}")
        if content is not None and not isinstance(content, (str, list)):
            raise RequestError(f"messages[{i}].content: expected a string or a list of parts, got {content!r:.80}")
    return list(messages)


def _pydantic_message(where: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return f"{where}: " + "; ".join(parts)
