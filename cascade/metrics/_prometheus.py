"""Prometheus counters and histograms fed by escalation events (``pip install 'cascade-router[metrics]'``)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from .._baseline import TopRungBaseline
from .._errors import ConfigError
from .._fields import items, number

Event = dict[str, Any]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds; LLM calls take from tens of milliseconds (cache, small model) to minutes."""
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
"""Validator scores (confidence, agreement share) lie in [0, 1]; the interesting part is near the top."""
RUNG = ("rung", "model")
"""The labels of every per-rung metric: one name for the rung everywhere, and its model beside it."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError("PrometheusSink needs prometheus-client: pip install 'cascade-router[metrics]'") from None
    return prometheus_client


@dataclass(frozen=True, slots=True)
class _Metrics:
    """One set of collectors per (registry, namespace), shared by every sink on them."""

    requests: Any
    attempts: Any
    escalations: Any
    retries: Any
    errors: Any
    tokens: Any
    cost: Any
    top_rung_cost: Any
    budget_exhausted: Any
    validator_score: Any
    attempt_latency: Any
    request_latency: Any
    top_rung: Any
    breaker_open: Any
    buckets: tuple[tuple[float, ...], tuple[float, ...]]

    @classmethod
    def create(
        cls, prom: Any, reg: Any, namespace: str, latency: tuple[float, ...], scores: tuple[float, ...]
    ) -> _Metrics:
        kw: dict[str, Any] = {"namespace": namespace, "registry": reg}
        return cls(
            requests=prom.Counter("requests", "Requests by final outcome", ["outcome"], **kw),
            attempts=prom.Counter("attempts", "Attempts by rung and outcome", [*RUNG, "outcome"], **kw),
            escalations=prom.Counter(
                "escalations", "Attempts that left a rung without an accepted answer", [*RUNG, "reason"], **kw
            ),
            retries=prom.Counter("retries", "Retried HTTP calls (transient failures)", list(RUNG), **kw),
            errors=prom.Counter("errors", "Attempts that ended in a provider error", [*RUNG, "kind"], **kw),
            tokens=prom.Counter("tokens", "Tokens billed, by type (input, output)", [*RUNG, "type"], **kw),
            cost=prom.Counter("cost_usd", "Spend in USD", list(RUNG), **kw),
            top_rung_cost=prom.Counter(
                "top_rung_cost_usd",
                "Estimated USD had every request gone to the top rung alone (savings baseline)",
                **kw,
            ),
            budget_exhausted=prom.Counter(
                "budget_exhausted", "Attempts stopped by the request's budget_usd cap", [*RUNG, "reason"], **kw
            ),
            validator_score=prom.Histogram(
                "validator_score",
                "Scores validators gave (confidence, agreement)",
                [*RUNG, "validator"],
                buckets=scores,
                **kw,
            ),
            attempt_latency=prom.Histogram(
                "attempt_latency_seconds", "Attempt latency", list(RUNG), buckets=latency, **kw
            ),
            request_latency=prom.Histogram(
                "request_latency_seconds", "Request latency, all attempts", buckets=latency, **kw
            ),
            top_rung=prom.Gauge("top_rung_info", "1 for the ladder's top rung (from request events)", list(RUNG), **kw),
            breaker_open=prom.Gauge(
                "breaker_open", "1 while the rung's circuit is open or half-open (calls skipped)", ["rung"], **kw
            ),
            buckets=(latency, scores),
        )


_SHARED: weakref.WeakKeyDictionary[Any, dict[str, _Metrics]] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _metrics_for(
    prom: Any, reg: Any, namespace: str, latency: tuple[float, ...], scores: tuple[float, ...]
) -> _Metrics:
    with _SHARED_LOCK:
        per_registry = _SHARED.setdefault(reg, {})
        metrics = per_registry.get(namespace)
        if metrics is None:
            metrics = per_registry[namespace] = _Metrics.create(prom, reg, namespace, latency, scores)
        elif metrics.buckets != (latency, scores):
            raise ConfigError(
                f"PrometheusSink: namespace {namespace!r} is already registered in this registry with other "
                "buckets; use the same buckets, another namespace or another registry"
            )
        return metrics


class PrometheusSink:
    """Counts what the cascade does, for scraping and alerting.

    Metrics (prefix ``namespace_``, default ``cascade_``; every per-rung metric has ``rung`` and ``model``):

    * ``requests_total{outcome}``: accepted | exhausted | error;
    * ``attempts_total{rung, model, outcome}``; ``escalations_total{rung, model, reason}``: attempts that
      left a rung without an answer (escalated or errored), labelled with their first reason code;
    * ``retries_total``, ``errors_total{kind}``, ``tokens_total{type=input|output}``, ``cost_usd_total``;
    * ``top_rung_cost_usd_total``: the estimated cost had every request gone to the top rung alone
      (``cascade._baseline``); savings = this minus ``cost_usd_total`` (it can be negative: a request
      that climbed the whole ladder cost more than the top rung alone);
    * ``budget_exhausted_total{reason}``: attempts stopped by ``budget_usd`` (``budget_exhausted``: the
      call was not made; ``budget_overrun``: a provider reported more than its bound);
    * ``validator_score{validator}``, ``attempt_latency_seconds``, ``request_latency_seconds``: histograms;
    * ``top_rung_info{rung, model}`` (1 for the top rung, so rules can single it out) and
      ``breaker_open{rung}`` (1 while the rung's circuit is open or half-open): gauges.

    ``registry`` defaults to prometheus-client's global registry. Sinks on the same registry and
    namespace share one set of collectors (so a second ``PrometheusSink()`` adds to the same series
    instead of raising ``Duplicated timeseries``). Label values come from the ladder, the validators'
    names and reason codes, so their number is bounded by configuration, not by traffic.
    """

    def __init__(
        self,
        registry: Any = None,
        *,
        namespace: str = "cascade",
        latency_buckets: tuple[float, ...] = LATENCY_BUCKETS,
        score_buckets: tuple[float, ...] = SCORE_BUCKETS,
        max_pending: int = 100_000,
    ) -> None:
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.REGISTRY
        self.namespace = namespace
        self.m = _metrics_for(prom, self.registry, namespace, tuple(latency_buckets), tuple(score_buckets))
        self._baseline = TopRungBaseline(max_pending)
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        kind = event.get("event")
        if kind == "attempt":
            self._attempt(event)
        elif kind == "request":
            self._request(event)
        elif kind == "breaker":
            self.m.breaker_open.labels(rung=str(event.get("rung"))).set(0 if event.get("to") == "closed" else 1)

    def _request(self, e: Event) -> None:
        self.m.requests.labels(outcome=str(e.get("outcome"))).inc()
        top = e.get("top_rung")
        if isinstance(top, dict):
            self.m.top_rung.labels(rung=str(top.get("name")), model=str(top.get("model"))).set(1)
        latency = number(e.get("latency_ms"))
        if latency is not None:
            self.m.request_latency.observe(latency / 1000)
        with self._lock:
            baseline = self._baseline.request(e)
        if baseline is not None:
            self.m.top_rung_cost.inc(baseline)

    def _attempt(self, e: Event) -> None:
        rung = {"rung": str(e.get("rung")), "model": str(e.get("model"))}
        outcome = str(e.get("outcome"))
        reasons = [str(r) for r in items(e.get("reasons"))]
        self.m.attempts.labels(**rung, outcome=outcome).inc()
        if outcome in ("escalated", "error"):
            self.m.escalations.labels(**rung, reason=reasons[0] if reasons else "unknown").inc()
        if outcome == "error":
            err = e.get("error")
            kind = err.get("kind") if isinstance(err, dict) else None
            self.m.errors.labels(**rung, kind=str(kind or "unknown")).inc()
        for reason in ("budget_exhausted", "budget_overrun"):
            if reason in reasons:
                self.m.budget_exhausted.labels(**rung, reason=reason).inc()
        retries = number(e.get("retries"))
        if retries:
            self.m.retries.labels(**rung).inc(retries)
        for kind, key in (("input", "tokens_in"), ("output", "tokens_out")):
            self.m.tokens.labels(**rung, type=kind).inc(number(e.get(key)) or 0)
        self.m.cost.labels(**rung).inc(number(e.get("cost_usd")) or 0.0)
        latency = number(e.get("latency_ms"))
        if latency is not None:
            self.m.attempt_latency.labels(**rung).observe(latency / 1000)
        for v in items(e.get("verdicts")):
            score = number(v.get("score")) if isinstance(v, dict) else None
            if score is not None:
                self.m.validator_score.labels(**rung, validator=str(v.get("validator"))).observe(score)
        with self._lock:
            self._baseline.attempt(e)

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve this sink's registry over HTTP at ``/metrics`` from a daemon thread; returns the server
        (``.shutdown()`` stops it) and the port (useful with ``port=0``)."""
        prom = _prometheus()
        server, _thread = prom.start_http_server(port, addr=addr, registry=self.registry)
        return server, int(server.server_port)

    def __repr__(self) -> str:
        return f"PrometheusSink(namespace={self.namespace!r})"
