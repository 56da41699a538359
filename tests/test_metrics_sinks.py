"""PrometheusSink and OpenTelemetrySink with the real libraries, fed the events of a hand-made log."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")

from logbuilder import LogBuilder, acc, err, esc, reask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from structlog.testing import CapturingLogger

from cascade import Cascade, ConfigError, OpenAICompatible, Rung, StructlogSink
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
    assert top is not None
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


def by_request(spans: Any) -> dict[str, tuple[Any, list[Any]]]:
    """Each request span with its child spans, by request id; checks that every child hangs under one."""
    roots = {s.context.span_id: s for s in spans if s.parent is None}
    out: dict[str, tuple[Any, list[Any]]] = {r.attributes["cascade.request_id"]: (r, []) for r in roots.values()}
    for s in spans:
        if s.parent is not None:
            root = roots[s.parent.span_id]
            assert s.context.trace_id == root.context.trace_id
            out[root.attributes["cascade.request_id"]][1].append(s)
    return out


def test_otel_a_client_span_per_model_call_under_a_request_span() -> None:
    exporter, provider = otel()
    sink = OpenTelemetrySink(provider)
    evs = events()
    for e in evs:
        sink.emit(e)
    spans = by_request(exporter.get_finished_spans())
    assert sink.pending == 0
    requests = [e for e in evs if e["event"] == "request"]
    assert list(spans) == [r["request_id"] for r in requests]
    for req in requests:
        root, children = spans[req["request_id"]]
        assert root.name == "cascade.request" and root.kind == SpanKind.INTERNAL
        assert root.attributes["cascade.cost_usd"] == pytest.approx(req["cost_usd"])
        assert root.end_time == int(req["ts"] * 1e9)
        assert root.end_time - root.start_time == pytest.approx(req["latency_ms"] * 1e6, abs=1e3)
        attempts = [a for a in evs if a["event"] == "attempt" and a["request_id"] == req["request_id"]]
        assert [c.name for c in children] == [f"chat {a['model']}" for a in attempts]
        for child, a in zip(children, attempts, strict=True):
            assert child.kind == SpanKind.CLIENT
            attrs = child.attributes
            assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "openai"
            assert attrs["gen_ai.request.model"] == a["model"] and attrs["cascade.rung"] == a["rung"]
            assert child.end_time == int(a["ts"] * 1e9)
            assert child.end_time - child.start_time == pytest.approx(a["latency_ms"] * 1e6, abs=1e3)
            if a["outcome"] != "error":
                assert attrs["gen_ai.usage.input_tokens"] == a["tokens_in"]
                assert attrs["gen_ai.usage.output_tokens"] == a["tokens_out"]
    first, third, fourth = (spans[r["request_id"]] for r in (requests[0], requests[2], requests[3]))
    assert first[0].attributes["cascade.metadata.tenant"] == "a"
    assert first[0].status.status_code == StatusCode.UNSET
    assert third[0].status.status_code == StatusCode.ERROR and third[0].status.description == "schema"
    escalated = third[1][1].attributes
    assert tuple(escalated["cascade.reasons"]) == ("schema", "budget_overrun")
    assert escalated["cascade.outcome"] == "escalated"
    failed = fourth[1][0]
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes["error.type"] == "server_error"
    assert failed.attributes["cascade.error.kind"] == "rung_fatal" and failed.attributes["cascade.retries"] == 2
    assert failed.attributes["cascade.calls"] == 3 and "gen_ai.usage.input_tokens" not in failed.attributes


def test_otel_verdicts_are_evaluation_events_and_skips_make_no_client_span() -> None:
    exporter, provider = otel()
    sink = OpenTelemetrySink(provider, provider_name={"large": "anthropic"})
    b = LogBuilder(START)
    b.req([esc("small", "low_confidence"), {"rung": "medium", "outcome": "skipped", "reasons": ["rung_idle"],
           "calls": 0, "tokens_in": 0, "tokens_out": 0}, acc("large")])  # fmt: skip
    b.events[0]["verdicts"] = [
        {"validator": "confidence", "passed": False, "reason": "low_confidence", "score": 0.42, "detail": "p=0.42"},
        {"validator": "schema", "passed": True, "reason": "ok", "score": None, "detail": ""},
    ]
    for e in b.events:
        sink.emit(e)
    [(root, children)] = by_request(exporter.get_finished_spans()).values()
    assert [c.name for c in children] == ["chat small-1", "chat large-1"]
    assert children[1].attributes["gen_ai.provider.name"] == "anthropic"
    assert children[0].attributes["gen_ai.provider.name"] == "openai"
    verdicts = [dict(ev.attributes) for ev in children[0].events]
    assert [ev.name for ev in children[0].events] == ["gen_ai.evaluation.result"] * 2
    assert verdicts[0] == {
        "gen_ai.evaluation.name": "confidence",
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.evaluation.score.value": 0.42,
        "gen_ai.evaluation.explanation": "p=0.42",
        "cascade.verdict.reason": "low_confidence",
    }
    assert verdicts[1]["gen_ai.evaluation.score.label"] == "pass" and "gen_ai.evaluation.score.value" not in verdicts[1]
    [skip] = root.events
    assert skip.name == "cascade.attempt.skipped" and skip.attributes["cascade.rung"] == "medium"
    assert tuple(skip.attributes["cascade.reasons"]) == ("rung_idle",)


def histogram_points(metric: Metric) -> list[tuple[Mapping[str, Any], HistogramDataPoint]]:
    """A histogram metric's points with their attributes (the SDK types both more loosely)."""
    assert isinstance(metric.data, Histogram)
    out = []
    for p in metric.data.data_points:
        assert p.attributes is not None
        out.append((p.attributes, p))
    return out


def test_otel_genai_client_metrics() -> None:
    reader = InMemoryMetricReader()
    sink = OpenTelemetrySink(TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader]))
    for e in events():
        sink.emit(e)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = {(a["gen_ai.request.model"], a["gen_ai.token.type"]): p
              for a, p in histogram_points(usage)}  # fmt: skip
    assert (points["small-1", "input"].count, points["small-1", "input"].sum) == (4, 4000)  # not the error
    assert (points["large-1", "output"].count, points["large-1", "output"].sum) == (2, 1000)
    assert tuple(points["small-1", "input"].explicit_bounds)[:3] == (1, 4, 16)
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    by_error = {(a["gen_ai.request.model"], a.get("error.type")): p
                for a, p in histogram_points(duration)}  # fmt: skip
    assert by_error["small-1", None].count == 4 and by_error["small-1", "server_error"].count == 1
    assert by_error["medium-1", None].sum == pytest.approx(2.0 + 0.01)  # 2 s and the default 10 ms
    assert all(a["gen_ai.operation.name"] == "chat" for a, _ in histogram_points(duration))


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
    [(_root, children)] = by_request(exporter.get_finished_spans()).values()
    assert len(children) == 1 and sink.pending == 1


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -1]) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["request_id", "rung", "model", "outcome", "reasons", "verdicts", "tokens_in", "tokens_out", "cost_usd",
          "latency_ms", "calls", "retries", "error", "top_rung", "attempts", "metadata", "to", "ts"]  # fmt: skip


SHARED_TRACING = otel()[1]  # one tracer and one meter provider for every example: cheaper, and enough here
SHARED_METERS = MeterProvider(metric_readers=[InMemoryMetricReader()])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"event": st.sampled_from(["attempt", "request", "breaker", "idle", "other"])},
            optional={k: JSONISH for k in FIELDS},
        ),
        max_size=6,
    )
)
def test_sinks_survive_malformed_events(evs: list[dict[str, Any]]) -> None:
    """Fields missing, of the wrong type, NaN or negative: the sinks count what they can and never raise."""
    reg = CollectorRegistry()
    prom = PrometheusSink(reg)
    tracing = OpenTelemetrySink(SHARED_TRACING, meter_provider=SHARED_METERS)
    logger = CapturingLogger()
    logs = StructlogSink(logger)
    for e in evs:
        prom.emit(e)
        tracing.emit(e)
        logs.emit(e)
    assert len(logger.calls) == len(evs)
    for metric in reg.collect():
        for sample in metric.samples:
            assert sample.value == sample.value  # no NaN reached a counter


def test_a_hostile_top_rung_cannot_break_the_savings_baseline() -> None:
    reg = CollectorRegistry()
    sink = PrometheusSink(reg)
    b = LogBuilder(START)
    b.req([acc("small")])
    b.events[0]["tokens_in"] = 10**400  # past float's range
    b.events[-1]["top_rung"] = {"name": "large", "price_in": 10**400, "price_out": "thirty"}
    for e in b.events:
        sink.emit(e)
    assert reg.get_sample_value("cascade_top_rung_cost_usd_total") == 0.0  # counted as unknown, not raised
    assert reg.get_sample_value("cascade_requests_total", {"outcome": "accepted"}) == 1
