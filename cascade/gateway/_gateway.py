"""What a gateway serves and how it answers: named cascades, the keys that may call them, what an
unsatisfiable request gets, and the shared state. Framework-free; ``_app`` puts it on HTTP."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .._engine import Cascade
from .._errors import CascadeError, CascadeExhausted, ConfigError, ProviderError, RequestError
from .._result import CascadeResult
from .._sinks import MultiSink
from .._sticky import SESSION_KEY, StickySessions, session_id
from ._health import SharedHealth
from ._keys import ApiKey, KeyRing
from ._state import MemoryState, StateStore
from ._wire import Answer, ChatRequest, WireError, account, answer_of, headers_of

OnExhausted = Literal["error", "best_effort"]
MODEL_PREFIX = "cascade/"
DAY_S = 86_400


class Gateway:
    """The cascades behind one OpenAI-compatible endpoint; each is the model ``cascade/<name>``.

    ``keys`` (a :class:`KeyRing` or a list of :class:`ApiKey`) are the bearer keys accepted; None serves
    anyone (only allowed on loopback by ``cascade serve``). ``on_exhausted``: when no rung accepts,
    ``"error"`` answers HTTP 422 in OpenAI's error shape with each attempt's reasons; ``"best_effort"``
    returns the strongest answer with ``cascade.accepted: false`` and ``x-cascade-accepted: false``.
    A key with ``daily_usd`` runs each request under a budget of what is left of its day, at most
    ``request_reserve_usd`` (or the cascade's own ``budget_usd``): reserved before, settled after, so
    concurrent requests never spend past the cap. ``state`` (default in memory; :class:`RedisState` for
    several replicas) holds the spend, the sticky sessions and, with a shared store, each rung's
    breaker and idle flags (``cascade.gateway._health``).
    """

    def __init__(
        self,
        cascades: Cascade | Mapping[str, Cascade],
        *,
        keys: KeyRing | Sequence[ApiKey] | None = None,
        on_exhausted: OnExhausted = "error",
        state: StateStore | None = None,
        request_reserve_usd: float = 0.10,
        metrics: bool = True,
    ) -> None:
        named = {"default": cascades} if isinstance(cascades, Cascade) else dict(cascades)
        if not named:
            raise ConfigError("cascades: a gateway needs at least one cascade, got none")
        for name, cascade in named.items():
            if not isinstance(cascade, Cascade):
                raise ConfigError(f"cascades.{name}: expected a Cascade, got {type(cascade).__name__}")
        self.cascades = {_model_name(n): c for n, c in named.items()}
        self.keys = keys if isinstance(keys, KeyRing) or keys is None else KeyRing(keys)
        if on_exhausted not in ("error", "best_effort"):
            raise ConfigError(f"on_exhausted: expected 'error' or 'best_effort', got {on_exhausted!r}")
        self.on_exhausted: OnExhausted = on_exhausted
        self.state: StateStore = state if state is not None else MemoryState()
        if not request_reserve_usd > 0:
            raise ConfigError(f"request_reserve_usd: expected a number > 0 (USD), got {request_reserve_usd!r}")
        self.request_reserve_usd = request_reserve_usd
        self.registry: Any = None
        if metrics:
            self._attach_metrics()
        self.health: dict[str, SharedHealth] = {}
        if not isinstance(self.state, MemoryState):  # several replicas: share breaker and idle state
            for name, cascade in self.cascades.items():
                health = self.health[name] = SharedHealth(self.state, name, [r.name for r in cascade.ladder.rungs])
                cascade.add_gate(health)
                _add_sink(cascade, health)

    def __repr__(self) -> str:
        return f"Gateway(models={list(self.cascades)!r}, keys={self.keys!r}, state={self.state!r})"

    def _attach_metrics(self) -> None:
        """One Prometheus registry for the gateway, fed by every cascade's events (``/metrics``)."""
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            return  # /metrics then says how to install it
        from ..metrics import PrometheusSink

        self.registry = CollectorRegistry()
        sink = PrometheusSink(self.registry)
        for cascade in self.cascades.values():
            _add_sink(cascade, sink)

    # ------------------------------------------------------------------ one request

    def authorize(self, authorization: str | None) -> ApiKey | None:
        """The caller's key; raises a 401 when keys are required and none matches (never echoing it)."""
        if self.keys is None:
            return None
        key = self.keys.find(authorization)
        if key is None:
            raise WireError(401, "missing or unknown API key (Authorization: Bearer csk-...)", code="invalid_api_key")
        return key

    def cascade_for(self, model: str) -> tuple[str, Cascade]:
        name = _model_name(model)
        cascade = self.cascades.get(name)
        if cascade is None:
            raise WireError(
                404,
                f"model: no cascade named {model!r}; this gateway serves {sorted(self.cascades)}",
                code="model_not_found",
                param="model",
            )
        return name, cascade

    async def complete(
        self, chat: ChatRequest, key: ApiKey | None, headers: Mapping[str, str] | None = None
    ) -> tuple[Answer, dict[str, str]]:
        """Run the request's cascade; the answer and its headers, or a :class:`WireError`. ``headers``
        may carry ``x-cascade-session`` and ``x-cascade-deadline-ms``."""
        name, cascade = self.cascade_for(chat.model)
        headers = headers or {}
        request_id = uuid.uuid4().hex
        metadata = {**chat.metadata, "gateway_model": name}
        if key is not None:
            metadata["api_key"] = key.name
        raw_session = headers.get("x-cascade-session") or chat.user or metadata.pop(SESSION_KEY, None)
        if raw_session:
            metadata[SESSION_KEY] = session_id(raw_session)  # hashed: a user id never reaches the log
        deadline_s = _deadline(headers.get("x-cascade-deadline-ms"))
        account = reserved = None
        budget = want = cascade.budget_usd
        if key is not None and key.daily_usd is not None:
            account = f"spend:{key.name}:{datetime.datetime.now(datetime.timezone.utc).date().isoformat()}"
            want = budget if budget is not None else self.request_reserve_usd
            reserved = await self.state.reserve(account, key.daily_usd, want, 2 * DAY_S)
            if reserved <= 0:
                raise _cap_spent(key)
            budget = reserved
        result: CascadeResult | None = None
        spent_unknown = True  # an error inside the walk may come after paid calls: keep the reservation
        sticky = Sticky(self.state, name, cascade, metadata, chat.messages)
        try:
            health = self.health.get(name)
            if health is not None:
                await health.refresh()
            await sticky.load()
            result = await self._run(cascade, chat, metadata, budget, request_id, deadline_s)
            await sticky.save()
        except WireError as exc:
            spent_unknown = not exc.before_any_call
            raise
        finally:
            if account is not None and reserved is not None:
                spent = result.cost_usd if result is not None else reserved if spent_unknown else 0.0
                await self.state.settle(account, reserved, spent)
        if key is not None and reserved is not None and want is not None and reserved < want and _only_budget(result):
            raise _cap_spent(key)  # what was left of the day could not pay for the request
        return self._answer(cascade, name, result)

    async def _run(
        self,
        cascade: Cascade,
        chat: ChatRequest,
        metadata: dict[str, Any],
        budget: float | None,
        request_id: str,
        deadline_s: float | None,
    ) -> CascadeResult:
        try:
            return await cascade.run(
                chat.messages,
                metadata=metadata,
                budget_usd=budget,
                request_id=request_id,
                deadline_s=deadline_s,
                **chat.params,
            )
        except CascadeExhausted as exc:
            return exc.result
        except RequestError as exc:  # refused before any call: nothing was spent
            raise WireError(400, str(exc), before_any_call=True) from None
        except ProviderError as exc:  # the provider refused the request itself (kind "caller")
            raise WireError(
                400, f"the model refused the request: {exc.message}", code=exc.reason, request_id=request_id
            ) from None
        except CascadeError as exc:
            raise WireError(500, f"{type(exc).__name__}: {exc}", type="server_error", request_id=request_id) from None

    def _answer(self, cascade: Cascade, name: str, result: CascadeResult) -> tuple[Answer, dict[str, str]]:
        headers = headers_of(result)
        usable = result.accepted or (self.on_exhausted == "best_effort" and _best_effort(result))
        if not usable:
            reasons = sorted({r for a in result.attempts for r in a.reasons})
            message = (
                f"no rung of {name} accepted an answer after {len(result.attempts)} attempt(s); "
                f"reasons: {', '.join(reasons) or 'none'}"
            )
            raise WireError(
                422,
                message,
                type="cascade_exhausted",
                code="cascade_exhausted",
                reasons=reasons,
                headers=headers,
                cascade=account(result, name),
            )
        rung = cascade.ladder[result.answered_by] if result.answered_by else cascade.ladder.top
        return answer_of(result, rung.model, name), headers

    async def models(self) -> dict[str, Any]:
        created = int(time.time())
        data = [{"id": n, "object": "model", "created": created, "owned_by": "cascade-router"} for n in self.cascades]
        return {"object": "list", "data": data}

    async def ready(self) -> bool:
        return await self.state.ping()

    async def aclose(self) -> None:
        for health in self.health.values():
            await health.drain()
        for cascade in self.cascades.values():
            await cascade.aclose()
        await self.state.aclose()


class Sticky:
    """Sticky sessions across replicas: the cascade's :class:`StickySessions` gate decides in memory;
    with a shared store, the session's start rung is read from it before the walk and written back
    after, so a session escalated on one replica starts high on every other."""

    def __init__(
        self, state: StateStore, name: str, cascade: Cascade, metadata: Mapping[str, Any], messages: list[Any]
    ) -> None:
        gates = [g for g in cascade.gates.gates if isinstance(g, StickySessions)]
        self.gate = gates[0] if gates and not isinstance(state, MemoryState) else None
        self.state = state
        self.session = self.gate.session(metadata, messages) if self.gate is not None else ""
        self.key = f"sticky:{name}:{self.session}"
        self.before: int | None = None

    async def load(self) -> None:
        if self.gate is None:
            return
        stored = await self.state.get(self.key)
        if stored is not None and stored.isdigit():
            self.before = int(stored)
            self.gate.remember(self.session, self.before)

    async def save(self) -> None:
        if self.gate is None:
            return
        floor = self.gate.floor(self.session)
        if floor is not None:
            await self.state.set(self.key, str(floor), self.gate.ttl_s)


def _add_sink(cascade: Cascade, sink: Any) -> None:
    """Let ``sink`` see the cascade's events too, beside its own log."""
    events = cascade.events
    events.sink = sink if events.sink is None else MultiSink([events.sink, sink])


def _cap_spent(key: ApiKey) -> WireError:
    return WireError(
        429,
        f"key {key.name!r} has spent its daily cap of ${key.daily_usd}",
        type="insufficient_quota",
        code="spend_cap_exceeded",
    )


def _only_budget(result: CascadeResult) -> bool:
    """The request failed only because its budget could not pay for a call."""
    reasons = {r for a in result.attempts for r in a.reasons}
    return not result.accepted and reasons <= {"budget_exhausted", "budget_overrun"} and bool(reasons)


def _deadline(header: str | None) -> float | None:
    if header is None:
        return None
    if not header.strip().isdigit() or int(header) <= 0:
        raise WireError(400, f"x-cascade-deadline-ms: expected a whole number of milliseconds > 0, got {header!r:.40}")
    return int(header) / 1000


def _best_effort(result: CascadeResult) -> bool:
    """Fill a best-effort answer from the last attempt that produced one; False when none did."""
    if result.output is None and not result.tool_calls:
        last = next((a for a in reversed(result.attempts) if a.output is not None), None)
        if last is None:
            return False
        result.output, result.answered_by, result.tool_calls = last.output, last.rung, last.tool_calls
    return True


def _model_name(name: str) -> str:
    return name if name.startswith(MODEL_PREFIX) else MODEL_PREFIX + name
