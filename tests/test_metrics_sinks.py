"""PrometheusSink and OpenTelemetrySink with the real libraries, fed the events of a hand-made log."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")

from logbuilder import LogBuilder, acc, err, esc, reask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from cascade.metrics import OpenTelemetrySink, PrometheusSink

START = 1_764_115_200.0


def events() -> list[dict[str, Any]]:
    b = LogBuilder(START)
    t = {"tokens_in": 1000, "tokens_out": 500}
    b.req([acc("small", latency_ms=100, **t)], metadata={"tenant": "a"}, latency_ms=120)
    b.req([esc("small", "schema", **t), acc("medium", latency_ms=2000, **t)])
    b.req([reask("small", "schema", **t), esc("small", "schema", "budget_overrun", **t),
           esc("medium", "consistency", **t), esc("large", "schema", **t)])  # fmt: skip
    b.req([err("small", calls=3, retries=2), acc("large", **t)])
    return b.events


def test_prometheus_counters(tmp_path: Any) -> None:
    reg = CollectorRegistry()
    sink = PrometheusSink(reg)
    for e in events():
        sink.emit(e)

    def v(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert v("cascade_requests_total", outcome="accepted") == 3
    assert v("cascade_requests_total", outcome="exhausted") == 1
    assert v("cascade_escalations_total", from_rung="small", reason="schema") == 2
    assert v("cascade_escalations_total", from_rung="small", reason="server_error") == 1
    assert v("cascade_escalations_total", from_rung="medium", reason="consistency") == 1
    assert v("cascade_escalations_total", from_rung="large", reason="schema") == 1
    assert v("cascade_attempts_total", rung="small", outcome="reask") == 1
    assert v("cascade_attempts_total", rung="small", outcome="accepted") == 1
    assert v("cascade_retries_total", rung="small") == 2
    assert v("cascade_errors_total", rung="small", kind="rung_fatal") == 1
    assert v("cascade_cost_usd_total", rung="small") == pytest.approx(4 * 3e-4)
    assert v("cascade_cost_usd_total", rung="medium") == pytest.approx(2 * 3e-3)
    assert v("cascade_cost_usd_total", rung="large") == pytest.approx(2 * 0.025)
    assert v("cascade_attempt_latency_seconds_count", rung="small") == 5
    assert v("cascade_attempt_latency_seconds_bucket", rung="medium", le="1.0") == 1  # 10 ms yes, 2 s no
    assert v("cascade_attempt_latency_seconds_bucket", rung="medium", le="2.5") == 2
    assert v("cascade_request_latency_seconds_count") == 4
    assert v("cascade_request_latency_seconds_bucket", le="0.25") == 3  # 120, 40 and 20 ms; not 2010 ms


def otel() -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def test_otel_one_span_per_request_with_an_event_per_attempt() -> None:
    exporter, provider = otel()
    sink = OpenTelemetrySink(provider)
    evs = events()
    for e in evs:
        sink.emit(e)
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["cascade.request"] * 4 and sink.pending == 0
    requests = [e for e in evs if e["event"] == "request"]
    for span, req in zip(spans, requests, strict=True):
        assert span.attributes is not None and span.attributes["cascade.request_id"] == req["request_id"]
        assert span.attributes["cascade.cost_usd"] == pytest.approx(req["cost_usd"])
        assert span.end_time == int(req["ts"] * 1e9)
        assert span.end_time - span.start_time == pytest.approx(req["latency_ms"] * 1e6, abs=1e3)
        rungs = [ev.attributes["rung"] for ev in span.events if ev.attributes is not None]
        assert rungs == [a["rung"] for a in evs if a["event"] == "attempt" and a["request_id"] == req["request_id"]]
    first, _, third, fourth = spans
    assert first.attributes is not None and first.attributes["cascade.metadata.tenant"] == "a"
    assert first.status.status_code == StatusCode.UNSET
    assert third.status.status_code == StatusCode.ERROR and third.status.description == "schema"
    ev = third.events[1].attributes
    assert ev is not None and tuple(ev["reasons"]) == ("schema", "budget_overrun") and ev["outcome"] == "escalated"
    err_ev = fourth.events[0].attributes
    assert err_ev is not None and err_ev["error.kind"] == "rung_fatal" and err_ev["retries"] == 2


def test_otel_buffer_is_bounded() -> None:
    exporter, provider = otel()
    sink = OpenTelemetrySink(provider, max_pending=2, max_attempts=1)
    b = LogBuilder(START)
    for _ in range(3):  # three requests whose request event never comes
        b.req([esc("small", "schema"), acc("medium")], emit_request=False)
    for e in b.events:
        sink.emit(e)
    assert sink.pending == 2 and sink.dropped_requests == 1 and sink.dropped_attempts == 3
    b.events.clear()
    b.req([acc("small")], request_id="r3")  # the request event of the third one finally comes
    for e in b.events:
        sink.emit(e)
    spans = exporter.get_finished_spans()
    assert len(spans) == 1 and len(spans[0].events) == 1 and sink.pending == 1
