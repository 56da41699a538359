"""Prometheus counters and histograms fed by escalation events (``pip install 'cascade-router[metrics]'``)."""

from __future__ import annotations

from typing import Any

from .._errors import ConfigError

Event = dict[str, Any]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds; LLM calls take from tens of milliseconds (cache, small model) to minutes."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError("PrometheusSink needs prometheus-client: pip install 'cascade-router[metrics]'") from None
    return prometheus_client


class PrometheusSink:
    """Counts what the cascade does, for scraping and alerting.

    Metrics (prefix ``namespace_``, default ``cascade_``):

    * ``requests_total{outcome}``: accepted | exhausted | error;
    * ``escalations_total{from_rung, reason}``: attempts that left a rung without an answer (escalated
      or errored), labelled with their first reason code;
    * ``attempts_total{rung, outcome}``, ``retries_total{rung}``, ``errors_total{rung, kind}``;
    * ``cost_usd_total{rung}``: spend, from the attempts;
    * ``attempt_latency_seconds{rung}`` and ``request_latency_seconds``: histograms.

    ``registry`` defaults to prometheus-client's global registry (one sink per process there); give
    your own ``CollectorRegistry`` for more. Label values come from the ladder and the validators'
    reason codes, so their number is bounded by configuration, not by traffic.
    """

    def __init__(
        self,
        registry: Any = None,
        *,
        namespace: str = "cascade",
        latency_buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        prom = _prometheus()
        reg = registry if registry is not None else prom.REGISTRY
        kw: dict[str, Any] = {"namespace": namespace, "registry": reg}
        self.requests = prom.Counter("requests", "Requests by final outcome", ["outcome"], **kw)
        self.escalations = prom.Counter(
            "escalations", "Attempts that left a rung without an accepted answer", ["from_rung", "reason"], **kw
        )
        self.attempts = prom.Counter("attempts", "Attempts by rung and outcome", ["rung", "outcome"], **kw)
        self.retries = prom.Counter("retries", "Retried HTTP calls (transient failures)", ["rung"], **kw)
        self.errors = prom.Counter("errors", "Attempts that ended in a provider error", ["rung", "kind"], **kw)
        self.cost = prom.Counter("cost_usd", "Spend in USD", ["rung"], **kw)
        self.shadow = prom.Counter(
            "shadow_audits",
            "Shadow audits of answers accepted below the top, by answering rung and outcome (agree, disagree, "
            "error, skipped): disagree / (agree + disagree) estimates the share differing from the top rung",
            ["rung", "outcome"],
            **kw,
        )
        self.attempt_latency = prom.Histogram(
            "attempt_latency_seconds", "Attempt latency", ["rung"], buckets=latency_buckets, **kw
        )
        self.request_latency = prom.Histogram(
            "request_latency_seconds", "Request latency, all attempts", buckets=latency_buckets, **kw
        )

    def emit(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "attempt":
            self._attempt(event)
        elif kind == "request":
            self.requests.labels(outcome=str(event.get("outcome"))).inc()
            latency = _number(event.get("latency_ms"))
            if latency is not None:
                self.request_latency.observe(latency / 1000)
        elif kind == "shadow":
            self.shadow.labels(rung=str(event.get("rung")), outcome=str(event.get("outcome"))).inc()

    def _attempt(self, e: Event) -> None:
        rung, outcome = str(e.get("rung")), str(e.get("outcome"))
        self.attempts.labels(rung=rung, outcome=outcome).inc()
        reasons = e.get("reasons") or []
        if outcome in ("escalated", "error"):
            reason = str(reasons[0]) if reasons else "unknown"
            self.escalations.labels(from_rung=rung, reason=reason).inc()
        if outcome == "error":
            err = e.get("error")
            kind = err.get("kind") if isinstance(err, dict) else None
            self.errors.labels(rung=rung, kind=str(kind or "unknown")).inc()
        retries = _number(e.get("retries"))
        if retries:
            self.retries.labels(rung=rung).inc(retries)
        cost = _number(e.get("cost_usd"))
        self.cost.labels(rung=rung).inc(cost or 0.0)
        latency = _number(e.get("latency_ms"))
        if latency is not None:
            self.attempt_latency.labels(rung=rung).observe(latency / 1000)

    def __repr__(self) -> str:
        return "PrometheusSink()"


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    return None
