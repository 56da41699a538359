"""OpenTelemetry traces and metrics that follow the GenAI semantic conventions (``[metrics]`` extra).

Per request, one ``cascade.request`` span (INTERNAL) with a CLIENT span per attempt that called a model,
named ``{gen_ai.operation.name} {gen_ai.request.model}`` (``chat small-1``) and carrying the ``gen_ai.*``
request and usage attributes (``gen_ai.response.*`` is left out: the events do not carry the response's
model, id or finish reason); each verdict is a ``gen_ai.evaluation.result`` event on it.
Attempts skipped without a call (open circuit, idle rung, budget) are ``cascade.attempt.skipped`` events
on the request span. What the conventions lack is under ``cascade.*`` (rung, outcome, reasons, cost).

Derived from attempt events: the engine logs one event per attempt, not per HTTP call, so an attempt's
retries and extra samples are inside its one CLIENT span (counted by ``cascade.calls``,
``cascade.retries``; its usage is their sum), and its start is its end minus its latency.

Metrics (recorded as attempt events arrive): ``gen_ai.client.token.usage`` (histogram, ``{token}``, by
``gen_ai.token.type``) and ``gen_ai.client.operation.duration`` (histogram, seconds, with ``error.type``
on failed calls), both with the buckets the conventions advise.

Attempt events arrive before their request event, so they are held by request id until it comes. The
buffer is bounded: beyond ``max_pending`` requests the oldest are dropped (a request whose event never
comes, e.g. after a crash, must not leak), and beyond ``max_attempts`` a request's later attempts are
dropped; both are counted (``dropped_requests``, ``dropped_attempts``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError
from .._fields import items, number

Event = dict[str, Any]

OPERATION = "chat"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Both as advised by the GenAI semantic conventions for client metrics."""

_REQUEST_FIELDS = ("request_id", "outcome", "accepted", "answered_by", "escalations", "attempts", "tokens_in",
                   "tokens_out", "cost_usd", "latency_ms", "reason", "budget_usd")  # fmt: skip
_ATTEMPT_FIELDS = ("attempt", "rung", "rung_index", "outcome", "cost_usd", "latency_ms", "calls", "retries")


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OpenTelemetrySink:
    """Turns each request's events into spans (see the module docstring) and records the GenAI client
    metrics. ``tracer_provider`` and ``meter_provider`` default to the global ones. ``provider_name``
    (``gen_ai.provider.name``) is one name, or a mapping from rung name to name: the events do not say
    which API a rung speaks, and ``OpenAICompatible`` speaks ``openai``."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        meter_provider: Any = None,
        provider_name: str | Mapping[str, str] = "openai",
        max_pending: int = 10_000,
        max_attempts: int = 64,
        span_name: str = "cascade.request",
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            raise ConfigError("OpenTelemetrySink needs opentelemetry: pip install 'cascade-router[metrics]'") from None
        if max_pending < 1 or max_attempts < 1:
            raise ConfigError(f"max_pending and max_attempts must be >= 1, got {max_pending!r}, {max_attempts!r}")
        if not isinstance(provider_name, (str, Mapping)):
            raise ConfigError(f"provider_name: expected a name or a mapping rung -> name, got {provider_name!r}")
        self._trace = trace
        self.tracer = trace.get_tracer("cascade", tracer_provider=tracer_provider)
        meter = metrics.get_meter("cascade", meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.provider_name = provider_name
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
            self._record(event)
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
            self._spans(event, attempts)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ GenAI attributes and metrics

    def _gen_ai(self, a: Event) -> dict[str, Any]:
        """The conventions' attributes shared by the CLIENT span and the metrics of one attempt."""
        names = self.provider_name
        provider = names if isinstance(names, str) else names.get(str(a.get("rung")), "openai")
        attrs = {"gen_ai.operation.name": OPERATION, "gen_ai.provider.name": provider}
        if isinstance(a.get("model"), str):
            attrs["gen_ai.request.model"] = a["model"]
        return attrs

    def _record(self, a: Event) -> None:
        if not number(a.get("calls")):
            return  # skipped: no model was called
        attrs = self._gen_ai(a)
        if a.get("outcome") == "error":
            attrs["error.type"] = _error_type(a)
        for token_type, key in (("input", "tokens_in"), ("output", "tokens_out")):
            tokens = number(a.get(key))
            if tokens and "error.type" not in attrs:
                self.token_usage.record(tokens, {**attrs, "gen_ai.token.type": token_type})
        latency = number(a.get("latency_ms"))
        if latency is not None:
            self.operation_duration.record(latency / 1000, attrs)

    # ------------------------------------------------------------------ spans

    def _spans(self, e: Event, attempts: list[Event]) -> None:
        trace = self._trace
        end = number(e.get("ts")) or 0.0
        attrs = {f"cascade.{k}": e[k] for k in _REQUEST_FIELDS if _is_attr(e.get(k))}
        top = e.get("top_rung")
        if isinstance(top, dict) and isinstance(top.get("name"), str):
            attrs["cascade.top_rung"] = top["name"]
        meta = e.get("metadata")
        if isinstance(meta, dict):
            attrs.update({f"cascade.metadata.{k}": v for k, v in meta.items() if _is_attr(v)})
        root = self.tracer.start_span(
            self.span_name, start_time=_ns(_start(e, end)), attributes=attrs, kind=trace.SpanKind.INTERNAL
        )
        context = trace.set_span_in_context(root)
        for a in attempts:
            a_end = number(a.get("ts")) or end
            if number(a.get("calls")):
                self._client_span(a, context, a_end)
            else:
                skipped = {f"cascade.{k}": a[k] for k in ("rung", "model", "outcome") if _is_attr(a.get(k))}
                skipped["cascade.reasons"] = _reasons(a)
                root.add_event("cascade.attempt.skipped", attributes=skipped, timestamp=_ns(a_end))
        if e.get("outcome") != "accepted":
            root.set_status(trace.Status(trace.StatusCode.ERROR, str(e.get("reason") or e.get("outcome"))))
        root.end(end_time=_ns(end))

    def _client_span(self, a: Event, context: Any, end: float) -> None:
        trace = self._trace
        attrs = self._gen_ai(a)
        attrs.update({f"cascade.{k}": a[k] for k in _ATTEMPT_FIELDS if _is_attr(a.get(k))})
        attrs["cascade.reasons"] = _reasons(a)
        error = a.get("outcome") == "error"
        if error:
            attrs["error.type"] = _error_type(a)
            err = a.get("error")
            if isinstance(err, dict):
                attrs.update({f"cascade.error.{k}": v for k, v in err.items() if _is_attr(v)})
        else:
            attrs["gen_ai.usage.input_tokens"] = int(number(a.get("tokens_in")) or 0)
            attrs["gen_ai.usage.output_tokens"] = int(number(a.get("tokens_out")) or 0)
        name = f"{OPERATION} {attrs.get('gen_ai.request.model', '')}".rstrip()
        span = self.tracer.start_span(
            name, context=context, kind=trace.SpanKind.CLIENT, start_time=_ns(_start(a, end)), attributes=attrs
        )
        for v in items(a.get("verdicts")):
            if isinstance(v, dict):
                span.add_event("gen_ai.evaluation.result", attributes=_evaluation(v), timestamp=_ns(end))
        if error:
            span.set_status(trace.Status(trace.StatusCode.ERROR, attrs["error.type"]))
        span.end(end_time=_ns(end))

    def __repr__(self) -> str:
        return f"OpenTelemetrySink(pending={self.pending})"


def _evaluation(v: Event) -> dict[str, Any]:
    """One verdict as the conventions' evaluation result (plus its reason code)."""
    out: dict[str, Any] = {
        "gen_ai.evaluation.name": str(v.get("validator")),
        "gen_ai.evaluation.score.label": "pass" if v.get("passed") else "fail",
        "cascade.verdict.reason": str(v.get("reason")),
    }
    score = number(v.get("score"))
    if score is not None:
        out["gen_ai.evaluation.score.value"] = score
    if isinstance(v.get("detail"), str) and v["detail"]:
        out["gen_ai.evaluation.explanation"] = v["detail"]
    return out


def _error_type(a: Event) -> str:
    err = a.get("error")
    reason = err.get("reason") if isinstance(err, dict) else None
    return str(reason or (_reasons(a) or ["_OTHER"])[0])


def _reasons(a: Event) -> list[str]:
    return [str(r) for r in items(a.get("reasons"))]


def _start(e: Event, end: float) -> float:
    latency = number(e.get("latency_ms"))
    return end - latency / 1000 if latency is not None else end


def _is_attr(v: Any) -> bool:
    return isinstance(v, (str, bool, int, float))
