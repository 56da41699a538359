"""The test server's scripted state: per-model reply queues, responders, defaults, fault rates, the
API key and the request log. Shared between the test's thread and the server's loop, so every access
holds one lock."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._reply import FAULTS, RecordedRequest, Reply

Responder = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]
"""``fn(request_json) -> Reply`` (or an awaitable of one); runs on the server's event loop."""

DEFAULT_FAULTS: tuple[str, ...] = ("server_error", "rate_limit", "bad_gateway", "unavailable", "reset")
"""Faults ``fault_rate`` draws from unless told otherwise: the transient ones a client should retry."""


@dataclass
class _FaultRate:
    rate: float
    faults: tuple[str, ...]
    rng: random.Random


class Script:
    """Decides the :class:`Reply` for each request. Precedence: a random fault (``fault_rate``), then the
    model's queue, then its responder, then its default, then the any-model default."""

    def __init__(self, *, record: bool = True) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._record = record
        self._queues: dict[str, deque[Reply]] = {}
        self._responders: dict[str, Responder] = {}
        self._defaults: dict[str | None, Reply] = {None: Reply()}
        self._fault_rates: dict[str | None, _FaultRate] = {}
        self._api_key: str | None = None
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []

    # -- configuration (test thread) ------------------------------------------------------------
    def script(self, model: str, replies: Iterable[Reply]) -> None:
        items = list(replies)
        for i, reply in enumerate(items):
            if not isinstance(reply, Reply):
                raise TypeError(f"script({model!r}, ...): argument {i} must be a Reply, got {reply!r:.80}")
        with self._lock:
            self._queues.setdefault(_model_name(model), deque()).extend(items)

    def default(self, reply: Reply, model: str | None = None) -> None:
        if not isinstance(reply, Reply):
            raise TypeError(f"default(reply=...) must be a Reply, got {reply!r:.80}")
        with self._lock:
            self._defaults[None if model is None else _model_name(model)] = reply

    def responder(self, model: str, fn: Responder) -> None:
        if not callable(fn):
            raise TypeError(f"responder({model!r}, fn=...) must be callable, got {fn!r:.80}")
        with self._lock:
            self._responders[_model_name(model)] = fn

    def fault_rate(
        self,
        rate: float,
        *,
        seed: int | None = None,
        faults: Iterable[str] = DEFAULT_FAULTS,
        model: str | None = None,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault_rate(rate=...) must be a number in [0, 1], got {rate!r}")
        names = tuple(faults)
        if isinstance(faults, str) or not names:
            raise ValueError(f"fault_rate(faults=...) must be a non-empty list of faults, got {faults!r}")
        unknown = [f for f in names if f not in FAULTS]
        if unknown:
            raise ValueError(f"fault_rate(faults=...): unknown fault(s) {unknown!r}; use {', '.join(FAULTS)}")
        key = None if model is None else _model_name(model)
        with self._lock:
            if rate == 0:
                self._fault_rates.pop(key, None)
            else:
                self._fault_rates[key] = _FaultRate(float(rate), names, random.Random(seed))

    def require_api_key(self, key: str | None) -> None:
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"require_api_key(key=...) must be a non-empty str or None, got {key!r}")
        with self._lock:
            self._api_key = key

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._responders.clear()
            self._defaults = {None: Reply()}
            self._fault_rates.clear()
            self._api_key = None
            self._requests.clear()
            self._errors.clear()

    # -- reading (either thread) ----------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout_s: float) -> list[RecordedRequest]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout_s):
                raise TimeoutError(
                    f"wait_for_requests({count}): only {len(self._requests)} request(s) arrived in {timeout_s} s"
                )
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    @property
    def api_key(self) -> str | None:
        with self._lock:
            return self._api_key

    def models(self) -> list[str]:
        with self._lock:
            names = set(self._queues) | set(self._responders) | {m for m in self._defaults if m is not None}
            names |= {m for m in self._fault_rates if m is not None}
        return sorted(names)

    def pending(self, model: str) -> int:
        """How many scripted replies of ``model`` are still queued."""
        with self._lock:
            return len(self._queues.get(model, ()))

    # -- serving (server loop) ------------------------------------------------------------------
    def record(self, request: RecordedRequest) -> None:
        if self._record:
            with self._arrived:
                self._requests.append(request)
                self._arrived.notify_all()

    def note_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def choose(self, model: str) -> tuple[Reply | None, Responder | None]:
        """The reply for one request of ``model``; or the responder to call when no reply is fixed."""
        with self._lock:
            rate = self._fault_rates.get(model) or self._fault_rates.get(None)
            if rate is not None and rate.rng.random() < rate.rate:
                return Reply(fault=rate.rng.choice(rate.faults)), None
            queue = self._queues.get(model)
            if queue:
                return queue.popleft(), None
            fn = self._responders.get(model)
            if fn is not None:
                return None, fn
            return self._defaults.get(model) or self._defaults[None], None


def _model_name(model: str) -> str:
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty str, got {model!r}")
    return model
