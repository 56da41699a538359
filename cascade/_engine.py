"""The engine: walk the ladder cheapest first, check each answer, escalate on failure, account for all."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, cast

from ._breaker import BreakerGate
from ._config import CircuitBreaker, RequestParams, SkipIdle
from ._content import ContentPolicy, LogContent
from ._deadline import DeadlineGate, check_deadline
from ._errors import CascadeExhausted, ConfigError, RequestError
from ._gates import Gates, RungGate
from ._idle import IdleGate
from ._ladder import Ladder, Rung
from ._ledger import Budget, TokenCounter, prompt_token_bound
from ._logs._resume import Resume, ResumeChanged
from ._progress import ProgressCallback, ProgressTracker
from ._result import CascadeResult, T
from ._shadow import Shadow, ShadowAudit
from ._sinks import EventLog, EventSink, Processor, add_timestamp, make_sink
from ._types import Message, Validator
from ._walk import Request, Walker, describe
from .validators._spec import as_validator

if TYPE_CHECKING:
    from .validators._spec import CheckSpec

OnExhausted = Literal["raise", "best_effort"]
DEFAULT_SAMPLE_TEMPERATURE = 0.7
"""Samples' temperature when neither the check nor the request sets one above 0."""
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


@dataclasses.dataclass(frozen=True)
class _BatchOptions:
    """The options of one batch (``imap``/``map``/``map_sync``), checked once and passed through whole."""

    concurrency: int
    resume_from: str | os.PathLike[str] | None
    resume_changed: ResumeChanged
    progress: bool | None
    on_progress: ProgressCallback | None

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"concurrency: expected an integer >= 1, got {self.concurrency!r}")


class Cascade(Generic[T]):
    """Sends each request to the cheapest rung first and escalates until an answer passes its checks.

    ``response_model`` (a pydantic model class, as Instructor's) makes every rung's answer pass
    ``JsonSchema(response_model)`` besides its own checks, and ``result.parsed`` an instance of it
    (``Cascade[Ticket]`` returns ``CascadeResult[Ticket]``). ``validators`` is the default check for
    rungs that set none. A rung with no check at all
    (``None``, or ``[]``) accepts its first answer: right for the top rung, surprising below it (a
    ``UserWarning`` says so at construction). ``budget_usd`` caps the spend of each
    request (see ``cascade._ledger`` for the exact guarantee). ``on_exhausted="raise"`` raises
    :class:`CascadeExhausted` (carrying the result) when no rung accepts; ``"best_effort"`` returns the
    strongest rung's answer with ``accepted=False``. ``log`` is a JSONL path, an ``EventSink``, a
    structlog logger, or a list of these. Prompts and outputs reach the log only if ``log_content``
    says so (``"hash"`` is an HMAC keyed by ``log_hash_key``). ``breaker`` is the default
    :class:`CircuitBreaker` of rungs that set none (see ``cascade._breaker``). ``skip_idle`` (a
    :class:`SkipIdle`) skips a rung below the top that has stopped accepting, probing it now and then
    (see ``cascade._idle``). ``gates`` are further :class:`~cascade.RungGate` objects asked before every
    rung's call (see ``cascade._gates``); the breaker and ``skip_idle`` are asked first.
    A request's own ``budget_usd`` (an argument of ``run``, a key of a batch item) may lower the cap,
    never raise it, unless ``allow_budget_increase=True``.
    ``deadline_s`` is a latency budget for each request's whole walk (``run(deadline_s=...)`` per
    request): rungs whose p95 latency no longer fits are skipped, calls are cut at the time left, and
    nothing is accepted late (see ``cascade._deadline``).
    ``shadow`` (a :class:`Shadow`) audits a sampled share of the answers accepted below the top against
    the top rung, after they are returned and within its own budget (see ``cascade._shadow``; live
    estimate: ``cascade.shadow.estimate()``).
    """

    def __init__(
        self,
        ladder: Ladder | Sequence[Rung],
        *,
        validators: CheckSpec | Sequence[CheckSpec] | None = None,
        budget_usd: float | None = None,
        on_exhausted: OnExhausted = "raise",
        log: Any = None,
        log_content: LogContent = "none",
        log_hash_key: str | bytes | None = None,
        processors: Sequence[Processor] | None = None,
        token_counter: TokenCounter = prompt_token_bound,
        sample_temperature: float | None = None,
        breaker: CircuitBreaker | None = None,
        skip_idle: SkipIdle | None = None,
        gates: Sequence[RungGate] | None = None,
        deadline_s: float | None = None,
        response_model: type[T] | None = None,
        allow_budget_increase: bool = False,
        shadow: Shadow | None = None,
    ) -> None:
        self.ladder = ladder if isinstance(ladder, Ladder) else Ladder(list(ladder))
        self.validators = as_validator(validators)
        self.response_model = _check_model(response_model)
        self.budget_usd = _check_budget(budget_usd)
        self.allow_budget_increase = allow_budget_increase
        if on_exhausted not in ("raise", "best_effort"):
            raise ConfigError(f"on_exhausted: expected 'raise' or 'best_effort', got {on_exhausted!r}")
        self.on_exhausted = on_exhausted
        self.content = ContentPolicy(log_content, log_hash_key)
        self.sink: EventSink | None = make_sink(log)
        self.events = EventLog(self.sink, processors if processors is not None else (add_timestamp,))
        self.token_counter = token_counter
        if sample_temperature is not None:
            warnings.warn(
                "Cascade(sample_temperature=...) is deprecated: set SelfConsistency(temperature=...), the check "
                "that draws the samples",
                DeprecationWarning,
                stacklevel=2,
            )
            if not 0 < sample_temperature <= 2:
                raise ConfigError(f"sample_temperature: expected a value in (0, 2], got {sample_temperature!r}")
        self.sample_temperature = sample_temperature or DEFAULT_SAMPLE_TEMPERATURE
        self._rung_names = [r.name for r in self.ladder.rungs]
        self._local = threading.local()
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._loops_lock = threading.Lock()
        self.breakers = BreakerGate.for_rungs(self.ladder.rungs, breaker, self.events.emit)
        self.idle = IdleGate(self._rung_names[:-1], skip_idle, self.events.emit)
        if gates is not None and (isinstance(gates, (str, bytes)) or not isinstance(gates, Sequence)):
            raise ConfigError(f"gates: expected a list of RungGate objects, got {gates!r}")
        self.deadline_s = check_deadline(deadline_s, "deadline_s")
        self.deadline = DeadlineGate()
        self.gates = Gates([self.breakers, self.idle, self.deadline, *(gates or ())])
        self._walker = Walker(
            self.ladder,
            self.validators,
            self.gates,
            self.events,
            self.content,
            token_counter,
            self.sample_temperature,
            response_model=self.response_model,
        )
        if unchecked := self._walker.unchecked():
            warnings.warn(
                f"rungs {unchecked} have no checks (validators=None or []): they accept every answer, so the "
                "rungs above them are reached only on errors. Give them validators=..., or the cascade a default.",
                UserWarning,
                stacklevel=2,
            )
        if shadow is not None and not isinstance(shadow, Shadow):
            raise ConfigError(f"shadow: expected a Shadow(rate=...), got {shadow!r}")
        self.shadow: ShadowAudit | None = None
        if shadow is not None:
            self.shadow = ShadowAudit(
                shadow, self.ladder.top, self._walker.wire_of, token_counter, self.events.emit, self.content
            )

    def __repr__(self) -> str:
        return f"Cascade(rungs={self._rung_names!r}, budget_usd={self.budget_usd!r}, log={self.sink!r})"

    @classmethod
    def from_policy(
        cls,
        policy: Any,
        *,
        providers: Any,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        checks: Mapping[str, Sequence[Validator]] | None = None,
        **kwargs: Any,
    ) -> Cascade:
        """Run a policy fitted by ``cascade tune`` (a path or a ``cascade.replay.Policy``) live: its rungs
        on ``providers`` (one provider, or one per model name), each judged by the policy's rule and
        asked for exactly the signals it reads (see ``cascade.validators._policy``); ``params`` and
        ``checks`` (run before the rule) per model. ``kwargs`` go to ``Cascade`` (budget, log, ...)."""
        from .validators._policy import load_policy, policy_ladder

        pol = load_policy(policy)
        shadow = kwargs.get("shadow")
        if isinstance(shadow, Shadow) and shadow.answer is None:  # audit with the policy's own answer rule
            kwargs["shadow"] = dataclasses.replace(shadow, answer=pol.answer)
        return cls(policy_ladder(pol, providers, params=params, checks=checks), **kwargs)

    # ------------------------------------------------------------------ public API

    async def run(
        self,
        messages: Sequence[Message],
        *,
        metadata: Mapping[str, Any] | None = None,
        budget_usd: float | None = None,
        request_id: str | None = None,
        deadline_s: float | None = None,
        **params: Any,
    ) -> CascadeResult[T]:
        """Answer one request. ``params`` (temperature, max_tokens, ...) override every rung's.
        ``deadline_s`` (default the cascade's) bounds the whole walk (see ``cascade._deadline``)."""
        req = self._new_request(messages, metadata, budget_usd, request_id, params, deadline_s)
        await self._drive(req)
        if not req.result.accepted and self.on_exhausted == "raise":
            raise CascadeExhausted(req.result)
        return req.result

    async def _drive(self, req: Request) -> None:
        """Walk one request; whatever it raises, its ``request`` event is written first."""
        best_effort = self.on_exhausted == "best_effort"
        try:
            await self._walker.walk(req)
        except BaseException as exc:  # caller errors, cancellation, bugs: the request event is still written
            self._walker.finish(req, best_effort, error=exc)
            raise
        self._walker.finish(req, best_effort)
        if self.shadow is not None:  # after the answer is final; the audit call runs in the background
            self.shadow.after(req.messages, req.params, req.result)

    def run_sync(self, messages: Sequence[Message], **kwargs: Any) -> CascadeResult[T]:
        """Blocking ``run`` for code without an event loop (one private loop per thread, reused)."""
        return self._loop().run_until_complete(self.run(messages, **kwargs))

    def add_gate(self, gate: RungGate) -> None:
        """Ask ``gate`` too before every rung's call, after the gates given at construction (for code
        that wraps a ready-made cascade, such as the gateway sharing breaker state between replicas)."""
        self.gates = Gates([*self.gates.gates, gate])
        self._walker.gates = self.gates

    def params_for(self, rung: str) -> dict[str, Any]:
        """The request params every call of ``rung`` sends: the rung's own, plus what its checks need
        (``response_format`` for a schema on a provider with a JSON mode, logprobs for ``Confidence``)."""
        if rung not in self._rung_names:
            raise ConfigError(f"rung: no rung named {rung!r}; rungs are {self._rung_names}")
        return self._walker.wire_of(rung)

    async def imap(
        self,
        inputs: Iterable[Any],
        *,
        concurrency: int = 16,
        resume_from: str | os.PathLike[str] | None = None,
        resume_changed: ResumeChanged = "refuse",
        progress: bool | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[tuple[int, CascadeResult[T]]]:
        """Yield ``(index, result)`` as requests finish, with at most ``concurrency`` in flight and
        memory bounded by that, not by the batch. Each item is a message list or a dict with
        ``messages`` and optionally ``metadata``, ``request_id`` and request params. A failing item
        yields a result with ``outcome="exhausted"`` or ``"error"`` (the exception's type and message,
        with the attempts made and their spend, whatever it raised); it never stops or shrinks the
        batch. An exception from ``inputs`` itself is raised here once the items before it are done.
        ``resume_from`` (a JSONL log of an earlier run) skips items that already ended there
        (see ``cascade._logs._resume``); if they were decided by another ladder or other checks, the
        batch is refused unless ``resume_changed`` is ``"rerun"`` (run them again) or ``"reuse"``.
        ``progress`` and ``on_progress``: see ``cascade._progress``."""
        batch = self._stream(inputs, _BatchOptions(concurrency, resume_from, resume_changed, progress, on_progress))
        async with contextlib.aclosing(batch):  # leaving the loop early stops the workers now, not at GC
            async for got in batch:
                yield got

    async def map(
        self,
        inputs: Iterable[Any],
        *,
        concurrency: int = 16,
        resume_from: str | os.PathLike[str] | None = None,
        resume_changed: ResumeChanged = "refuse",
        progress: bool | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[CascadeResult[T]]:
        """Run a batch; results in input order, per-item failures isolated (see ``imap``)."""
        return await self._collect(
            inputs, _BatchOptions(concurrency, resume_from, resume_changed, progress, on_progress)
        )

    def map_sync(
        self,
        inputs: Iterable[Any],
        *,
        concurrency: int = 16,
        resume_from: str | os.PathLike[str] | None = None,
        resume_changed: ResumeChanged = "refuse",
        progress: bool | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[CascadeResult[T]]:
        """Blocking ``map`` for code without an event loop (in a notebook: ``await cascade.map(...)``)."""
        loop = self._loop()
        options = _BatchOptions(concurrency, resume_from, resume_changed, progress, on_progress)
        return loop.run_until_complete(self._collect(inputs, options))

    async def aclose(self) -> None:
        """Wait for running shadow audits, then close the providers' connections of the running loop and
        the log sink."""
        if self.shadow is not None:
            await self.shadow.drain()
        for rung in self.ladder.rungs:
            await rung.provider.aclose()
        self.events.close()

    def close(self) -> None:
        """Close what ``run_sync`` opened in every thread (each thread's loop and its connections) and
        the log sink. A loop busy in another thread right now is left to that thread."""
        with self._loops_lock:  # claimed under the lock: two threads closing at once never close one loop twice
            loops = [loop for loop in self._loops if not loop.is_closed() and not loop.is_running()]
            for loop in loops:
                self._loops.discard(loop)
        for loop in loops:
            for rung in self.ladder.rungs:
                loop.run_until_complete(rung.provider.aclose())
            loop.close()
        self.events.close()

    async def __aenter__(self) -> Cascade[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Cascade[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one batch

    async def _stream(
        self, inputs: Iterable[Any], options: _BatchOptions
    ) -> AsyncGenerator[tuple[int, CascadeResult[T]], None]:
        """``imap``'s work: ``options.concurrency`` workers drain ``inputs``, results in finishing order."""
        concurrency = options.concurrency
        tracker = ProgressTracker(inputs, options.progress, options.on_progress)
        items = enumerate(inputs)
        queue: asyncio.Queue[tuple[int, CascadeResult[T]] | None] = asyncio.Queue(maxsize=concurrency * 2)
        resume = None
        if options.resume_from is not None:
            resume = Resume.load(options.resume_from, self._walker.fingerprint, options.resume_changed)
            self.events.emit(resume.summary_event())

        async def one(item: Any) -> CascadeResult[T]:
            if resume is not None:
                item, done = resume.prepare(item)  # the item with its stable request id
                if done is not None:
                    return done
            return await self._run_item(item)

        failed: list[BaseException] = []

        async def worker() -> None:
            try:
                for index, item in items:
                    try:
                        result = await one(item)
                    except Exception as exc:  # whatever one item raises, it gets a result
                        result = _error_result(exc)
                    await queue.put((index, result))
            except Exception as exc:  # the inputs' iterator itself failed: say so, after the rest
                failed.append(exc)
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
                    tracker.add(got[1])
                    yield got
        finally:
            tracker.close()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if failed:
            raise failed[0]

    async def _collect(self, inputs: Iterable[Any], options: _BatchOptions) -> list[CascadeResult[T]]:
        """``map``'s work: the streamed results put back in input order."""
        out: list[CascadeResult[T] | None] = []  # a list, not a dict by index: ~100 bytes less per result
        async for index, result in self._stream(inputs, options):
            if index >= len(out):
                out.extend([None] * (index + 1 - len(out)))
            out[index] = result
        missing = [i for i, r in enumerate(out) if r is None]
        if missing:  # never a short or holed batch in silence
            raise RuntimeError(f"map: no result for items {missing[:10]} of {len(out)} (a bug: please report it)")
        return cast("list[CascadeResult[T]]", out)

    # ------------------------------------------------------------------ one request

    def _new_request(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, Any] | None,
        budget_usd: float | None,
        request_id: str | None,
        params: dict[str, Any],
        deadline_s: float | None = None,
    ) -> Request:
        checked = _check_messages(messages)
        try:
            limit = check_deadline(deadline_s, "deadline_s") if deadline_s is not None else self.deadline_s
        except ConfigError as exc:
            raise RequestError(str(exc)) from None
        try:
            overrides = RequestParams(**params).to_wire() if params else {}
        except ConfigError as exc:
            raise RequestError(str(exc).replace("RequestParams.", "run.")) from None
        if metadata is not None and not isinstance(metadata, Mapping):
            raise RequestError(f"metadata: expected a mapping, got {metadata!r}")
        cap = self.budget_usd
        if budget_usd is not None:
            asked = _check_budget(budget_usd)
            if cap is not None and asked is not None and asked > cap and not self.allow_budget_increase:
                raise RequestError(
                    f"budget_usd: {budget_usd!r} is above the Cascade's cap of {cap!r}; a request may lower the "
                    "cap, not raise it (Cascade(allow_budget_increase=True) allows it)"
                )
            cap = asked
        rid = request_id or uuid.uuid4().hex
        meta = dict(metadata or {})
        req = Request(rid, checked, overrides, meta, Budget(cap), CascadeResult(request_id=rid, metadata=meta))
        if limit is not None:
            req.deadline = time.monotonic() + limit
        return req

    async def _run_item(self, item: Any) -> CascadeResult[T]:
        """One batch item's result, whatever happens: a malformed item or a request that raised (a
        caller error, a custom provider's KeyError, a full disk) is an ``error`` result carrying the
        exception's type and message and the attempts made, with their spend."""
        try:
            if isinstance(item, Mapping):
                kwargs = dict(item)
                messages = kwargs.pop("messages", None)
                if messages is None:
                    raise RequestError(f"map item: a dict item needs a 'messages' key, got keys {sorted(item)}")
            else:
                messages, kwargs = item, {}
            named = {k: kwargs.pop(k, None) for k in ("metadata", "budget_usd", "request_id", "deadline_s")}
            req = self._new_request(
                messages, named["metadata"], named["budget_usd"], named["request_id"], kwargs, named["deadline_s"]
            )
        except Exception as exc:
            return _error_result(exc)
        with contextlib.suppress(Exception):  # the walk recorded it: outcome "error", attempts, spend
            await self._drive(req)
        return req.result

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
            self._local.loop = loop  # dropped when the thread ends; the loop then goes with its connections
            with self._loops_lock:
                self._loops.add(loop)  # weakly: close() finds the loops of threads still alive
        return loop


def _error_result(exc: BaseException) -> CascadeResult[Any]:
    """The result of an item that failed before its request could start."""
    return CascadeResult(request_id=uuid.uuid4().hex, outcome="error", error=describe(exc))


def _check_model(model: Any) -> Any:
    if model is None:
        return None
    from pydantic import BaseModel

    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"response_model: expected a pydantic model class, got {model!r}")
    return model


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
