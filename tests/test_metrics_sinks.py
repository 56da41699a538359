"""PrometheusSink and OpenTelemetrySink with the real libraries, fed the events of a hand-made log."""

from __future__ import annotations

import json
from pathlib import Path
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

from cascade import Cascade, ConfigError, OpenAICompatible, Rung
from cascade._cli import main
from cascade.metrics import OpenTelemetrySink, PrometheusSink
from cascade.testing import Reply, TestServer
from cascade.validators import Verdict, check

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

    small, medium, large = ({"rung": r, "model": f"{r}-1"} for r in ("small", "medium", "large"))
    assert v("cascade_requests_total", outcome="accepted") == 3
    assert v("cascade_requests_total", outcome="exhausted") == 1
    assert v("cascade_escalations_total", **small, reason="schema") == 2
    assert v("cascade_escalations_total", **small, reason="server_error") == 1
    assert v("cascade_escalations_total", **medium, reason="consistency") == 1
    assert v("cascade_escalations_total", **large, reason="schema") == 1
    assert v("cascade_attempts_total", **small, outcome="reask") == 1
    assert v("cascade_attempts_total", **small, outcome="accepted") == 1
    assert v("cascade_retries_total", **small) == 2
    assert v("cascade_errors_total", **small, kind="rung_fatal") == 1
    assert v("cascade_cost_usd_total", **small) == pytest.approx(4 * 3e-4)
    assert v("cascade_cost_usd_total", **medium) == pytest.approx(2 * 3e-3)
    assert v("cascade_cost_usd_total", **large) == pytest.approx(2 * 0.025)
    assert v("cascade_tokens_total", **small, type="input") == 4 * 1000  # the errored attempt billed none
    assert v("cascade_tokens_total", **small, type="output") == 4 * 500
    assert v("cascade_tokens_total", **large, type="input") == 2 * 1000
    assert v("cascade_budget_exhausted_total", **small, reason="budget_overrun") == 1
    assert v("cascade_attempt_latency_seconds_count", **small) == 5
    assert v("cascade_attempt_latency_seconds_bucket", **medium, le="1.0") == 1  # 10 ms yes, 2 s no
    assert v("cascade_attempt_latency_seconds_bucket", **medium, le="2.5") == 2
    assert v("cascade_request_latency_seconds_count") == 4
    assert v("cascade_request_latency_seconds_bucket", le="0.25") == 3  # 120, 40 and 20 ms; not 2010 ms


def test_no_metric_labels_the_rung_any_other_way() -> None:
    reg = CollectorRegistry()
    sink = PrometheusSink(reg)
    for e in events():
        sink.emit(e)
    labels = {name for m in reg.collect() for s in m.samples for name in s.labels}
    assert "from_rung" not in labels and {"rung", "model"} <= labels


def test_prometheus_top_rung_baseline_equals_cascade_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The savings baseline is the one `cascade stats` reports for the same log, so the two agree."""
    reg = CollectorRegistry()
    sink = PrometheusSink(reg)
    evs = events()
    for e in evs:
        sink.emit(e)
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in evs))
    assert main(["stats", "--json", str(log)]) == 0
    stats = json.loads(capsys.readouterr().out)
    top = reg.get_sample_value("cascade_top_rung_cost_usd_total")
    assert top == pytest.approx(stats["baseline_top_cost_usd"], abs=1e-9)
    spent = sum(s.value for m in reg.collect() if m.name == "cascade_cost_usd" for s in m.samples
                if s.name == "cascade_cost_usd_total")  # fmt: skip
    assert top - spent == pytest.approx(stats["savings_usd"], abs=1e-9)


def test_two_default_sinks_in_one_process_share_the_series() -> None:
    """Two PrometheusSink() on the global registry: no Duplicated timeseries; both count into one series."""
    from prometheus_client import REGISTRY

    first, second = PrometheusSink(), PrometheusSink()
    labels = {"rung": "small", "model": "small-1", "outcome": "accepted"}
    before = REGISTRY.get_sample_value("cascade_attempts_total", labels) or 0.0
    one = [e for e in events() if e["event"] == "attempt" and e["outcome"] == "accepted" and e["rung"] == "small"]
    first.emit(one[0])
    second.emit(one[0])
    assert REGISTRY.get_sample_value("cascade_attempts_total", labels) == before + 2
    reg = CollectorRegistry()  # a registry of one's own, twice, and another namespace beside it
    PrometheusSink(reg), PrometheusSink(reg), PrometheusSink(reg, namespace="other")
    with pytest.raises(ConfigError, match="namespace 'cascade' is already registered in this registry"):
        PrometheusSink(reg, latency_buckets=(1.0, 2.0))


def test_budget_stops_and_validator_scores_from_a_real_cascade(server: TestServer) -> None:
    """A scored check on the cheap rung and a top rung the budget cannot afford: both counted."""
    server.default(Reply(content="x", tokens_in=10, tokens_out=5))
    p = OpenAICompatible(server.base_url)
    ladder = [
        Rung(name="cheap", provider=p, model="cheap-m", price_in=0.0, price_out=0.001),
        Rung(name="dear", provider=p, model="dear-m", price_in=1000.0, price_out=1000.0),
    ]

    @check(name="scored")
    def scored(_c: Any) -> Verdict:
        return Verdict(False, "low_score", score=0.25)

    reg = CollectorRegistry()
    sink = PrometheusSink(reg)
    with Cascade(ladder, validators=[scored], budget_usd=0.001, on_exhausted="best_effort", log=sink) as c:
        result = c.run_sync([{"role": "user", "content": "hi"}], max_tokens=5)
    assert [a.reasons for a in result.attempts] == [["low_score"], ["budget_exhausted"]]
    cheap, dear = {"rung": "cheap", "model": "cheap-m"}, {"rung": "dear", "model": "dear-m"}
    v = reg.get_sample_value
    assert v("cascade_budget_exhausted_total", {**dear, "reason": "budget_exhausted"}) == 1
    assert v("cascade_validator_score_count", {**cheap, "validator": "scored"}) == 1
    assert v("cascade_validator_score_bucket", {**cheap, "validator": "scored", "le": "0.3"}) == 1
    assert v("cascade_validator_score_bucket", {**cheap, "validator": "scored", "le": "0.2"}) == 0
    assert v("cascade_tokens_total", {**cheap, "type": "output"}) == 5


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
