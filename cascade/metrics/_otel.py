"""One OpenTelemetry span per request, one span event per attempt (``[metrics]`` extra).

Attempt events arrive before their request event, so they are held by request id until it comes. The
buffer is bounded: beyond ``max_pending`` requests the oldest are dropped (a request whose event never
comes, e.g. after a crash, must not leak), and beyond ``max_attempts`` a request's later attempts are
dropped; both are counted (``dropped_requests``, ``dropped_attempts``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .._errors import ConfigError

Event = dict[str, Any]

_ATTEMPT_FIELDS = ("rung", "rung_index", "model", "outcome", "tokens_in", "tokens_out", "cost_usd",
                   "latency_ms", "calls", "retries")  # fmt: skip
_REQUEST_FIELDS = ("request_id", "outcome", "accepted", "answered_by", "escalations", "attempts", "tokens_in",
                   "tokens_out", "cost_usd", "latency_ms", "reason", "budget_usd")  # fmt: skip


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OpenTelemetrySink:
    """Turns each request's events into a ``cascade.request`` span (attributes ``cascade.*``) with an
    ``attempt`` event per attempt. ``tracer_provider`` defaults to the global one."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        max_pending: int = 10_000,
        max_attempts: int = 64,
        span_name: str = "cascade.request",
    ) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigError("OpenTelemetrySink needs opentelemetry: pip install 'cascade-router[metrics]'") from None
        if max_pending < 1 or max_attempts < 1:
            raise ConfigError(f"max_pending and max_attempts must be >= 1, got {max_pending!r}, {max_attempts!r}")
        self._trace = trace
        self.tracer = trace.get_tracer("cascade", tracer_provider=tracer_provider)
        self.max_pending = max_pending
        self.max_attempts = max_attempts
        self.span_name = span_name
        self._pending: OrderedDict[str, list[Event]] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped_requests = 0
        self.dropped_attempts = 0

    def emit(self, event: Event) -> None:
        kind = event.get("event")
        rid = event.get("request_id")
        if not isinstance(rid, str):
            return
        if kind == "attempt":
            with self._lock:
                held = self._pending.get(rid)
                if held is None:
                    if len(self._pending) >= self.max_pending:
                        self._pending.popitem(last=False)
                        self.dropped_requests += 1
                    held = self._pending[rid] = []
                if len(held) < self.max_attempts:
                    held.append(event)
                else:
                    self.dropped_attempts += 1
        elif kind == "request":
            with self._lock:
                attempts = self._pending.pop(rid, [])
            self._span(event, attempts)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _span(self, e: Event, attempts: list[Event]) -> None:
        end = float(e.get("ts") or 0.0)
        latency = e.get("latency_ms")
        start = end - float(latency) / 1000 if isinstance(latency, (int, float)) else end
        attrs = {f"cascade.{k}": e[k] for k in _REQUEST_FIELDS if _is_attr(e.get(k))}
        top = e.get("top_rung")
        if isinstance(top, dict) and isinstance(top.get("name"), str):
            attrs["cascade.top_rung"] = top["name"]
        meta = e.get("metadata")
        if isinstance(meta, dict):
            attrs.update({f"cascade.metadata.{k}": v for k, v in meta.items() if _is_attr(v)})
        span = self.tracer.start_span(self.span_name, start_time=_ns(start), attributes=attrs)
        for a in attempts:
            a_attrs: dict[str, Any] = {k: a[k] for k in _ATTEMPT_FIELDS if _is_attr(a.get(k))}
            reasons = [str(r) for r in a.get("reasons") or []]
            if reasons:
                a_attrs["reasons"] = reasons
            err = a.get("error")
            if isinstance(err, dict):
                a_attrs.update({f"error.{k}": v for k, v in err.items() if _is_attr(v)})
            span.add_event("attempt", attributes=a_attrs, timestamp=_ns(float(a.get("ts") or end)))
        if e.get("outcome") != "accepted":
            status = self._trace.Status(self._trace.StatusCode.ERROR, str(e.get("reason") or e.get("outcome")))
            span.set_status(status)
        span.end(end_time=_ns(end))

    def __repr__(self) -> str:
        return f"OpenTelemetrySink(pending={self.pending})"


def _is_attr(v: Any) -> bool:
    return isinstance(v, (str, bool, int, float))
