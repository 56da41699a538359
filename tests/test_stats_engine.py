"""``cascade stats`` and the metrics sinks on logs written by REAL cascades against the test server.

A known escalation pattern over a three-rung ladder (small -> medium -> large), every figure checked:

* r1: small answers JSON -> accepted by small;
* r2: small answers prose (fails ``is_json``) -> medium answers JSON;
* r3: small, medium and large all answer prose -> exhausted;
* r4: small fails with HTTP 500 three times (two retries) -> error, escalates -> medium answers JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from checks import is_json

from cascade import Cascade, CascadeExhausted, Ladder, OpenAICompatible, RetryPolicy, Rung
from cascade._cli import main
from cascade.testing import Reply, TestServer

FAST_RETRY = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.02)
PRICES = {"small": (0.1, 0.4), "medium": (1.0, 4.0), "large": (10.0, 30.0)}  # USD per 1M tokens
MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]
GOOD, BAD = '{"label": "billing"}', "It is about billing."


def cost(rung: str, tokens_in: int, tokens_out: int) -> float:
    pin, pout = PRICES[rung]
    return (tokens_in * pin + tokens_out * pout) / 1e6


def run_pattern(server: TestServer, log: Any) -> list[Any]:
    p = OpenAICompatible(server.base_url)
    ladder = Ladder(
        [Rung(name=n, provider=p, model=f"{n}-m", price_in=pi, price_out=po, retry=FAST_RETRY)
         for n, (pi, po) in PRICES.items()]
    )  # fmt: skip
    server.script(
        "small-m",
        Reply(content=GOOD, tokens_in=100, tokens_out=10),  # r1
        Reply(content=BAD, tokens_in=100, tokens_out=20),  # r2
        Reply(content=BAD, tokens_in=100, tokens_out=20),  # r3
        Reply(status=500), Reply(status=500), Reply(status=500),  # r4: three calls, two retries
    )  # fmt: skip
    server.script(
        "medium-m",
        Reply(content=GOOD, tokens_in=100, tokens_out=10),  # r2
        Reply(content=BAD, tokens_in=100, tokens_out=30),  # r3
        Reply(content=GOOD, tokens_in=120, tokens_out=10),  # r4
    )
    server.script("large-m", Reply(content=BAD, tokens_in=100, tokens_out=40))  # r3
    results = []
    with Cascade(ladder, validators=[is_json], log=log) as cascade:
        for i in range(4):
            try:
                results.append(cascade.run_sync(MSG, metadata={"tenant": "acme" if i % 2 else "zeta"}))
            except CascadeExhausted as exc:
                results.append(exc.result)
    return results


def test_stats_of_a_real_cascade_log(server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "esc.jsonl"
    results = run_pattern(server, log)
    assert [r.outcome for r in results] == ["accepted", "accepted", "exhausted", "accepted"]
    assert [r.answered_by for r in results] == ["small", "medium", None, "medium"]
    err_reason = results[3].attempts[0].reasons[0]

    assert main(["stats", "--json", str(log), "--by", "metadata.tenant"]) == 0
    d = json.loads(capsys.readouterr().out)

    c = {
        "r1": cost("small", 100, 10),
        "r2": cost("small", 100, 20) + cost("medium", 100, 10),
        "r3": cost("small", 100, 20) + cost("medium", 100, 30) + cost("large", 100, 40),
        "r4": cost("medium", 120, 10),  # the failed calls cost nothing
    }
    total = sum(c.values())
    assert d["requests"] == 4 and d["attempts"] == 8 and d["calls"] == 10
    assert d["accepted"] == 3 and d["accepted_by_rung"] == {"medium": 2, "small": 1}
    assert d["final_failures"]["count"] == 1 and d["final_failures"]["by_outcome"] == {"exhausted": 1}
    assert d["final_failures"]["by_reason"] == {"custom:is_json": 1}
    assert d["escalated_requests"] == {"count": 3, "rate": 0.75} and d["escalations"] == 4
    assert d["errors"]["count"] == 1 and d["errors"]["by_kind"] == {"transient": 1}
    assert d["retries"] == {"count": 2, "rate": 0.2}
    assert d["cost_usd"] == pytest.approx(total)
    assert d["cost_per_accepted_usd"] == pytest.approx(total / 3)
    # baseline: each request once on large, first prompt (100 tokens; r4's first answered call: 120)
    # and last answer's output tokens (10, 10, 40, 10)
    baseline = cost("large", 100, 10) * 2 + cost("large", 100, 40) + cost("large", 120, 10)
    assert d["baseline_top_cost_usd"] == pytest.approx(baseline)
    assert d["savings_pct"] == pytest.approx(100 * (baseline - total) / baseline, abs=1e-3)

    s, m, lg = (d["by_rung"][n] for n in ("small", "medium", "large"))
    assert list(d["by_rung"]) == ["small", "medium", "large"]
    assert (s["reached"], s["accepted"], s["escalated"], s["errors"], s["escalation_rate"]) == (4, 1, 2, 1, 0.75)
    assert (s["calls"], s["retries"]) == (6, 2) and s["error_kinds"] == {"transient": 1}
    assert s["reasons"] == {"custom:is_json": 2, err_reason: 1}
    assert (m["reached"], m["accepted"], m["escalated"], m["escalation_rate"]) == (3, 2, 1, round(1 / 3, 6))
    assert (lg["reached"], lg["accepted"], lg["escalated"], lg["escalation_rate"]) == (1, 0, 1, 1.0)
    assert s["cost_usd"] == pytest.approx(cost("small", 100, 10) + 2 * cost("small", 100, 20))
    assert m["cost_usd"] == pytest.approx(cost("medium", 100, 10) + cost("medium", 100, 30) + cost("medium", 120, 10))
    assert lg["cost_usd"] == pytest.approx(cost("large", 100, 40))
    for r in (s, m, lg):
        assert r["latency_ms"]["count"] == r["attempts"] and r["latency_ms"]["p50"] > 0
    assert d["by_reason"]["custom:is_json"]["count"] == 4  # small x2, medium, large
    assert d["by_reason"][err_reason]["count"] == 1
    groups = d["by_metadata"]["groups"]
    assert groups["zeta"]["requests"] == 2 and groups["zeta"]["final_failures"]["count"] == 1  # r1, r3
    assert groups["acme"]["cost_usd"] == pytest.approx(c["r2"] + c["r4"])
    assert d["bad_lines"]["count"] == 0 and d["incomplete_requests"] == 0


def test_metrics_sinks_see_the_same_events_as_the_log(server: TestServer, tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from cascade.metrics import OpenTelemetrySink, PrometheusSink

    reg = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetrySink(provider)
    log = tmp_path / "esc.jsonl"
    results = run_pattern(server, [log, PrometheusSink(reg), otel])

    def v(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert v("cascade_requests_total", outcome="accepted") == 3
    assert v("cascade_requests_total", outcome="exhausted") == 1
    assert v("cascade_escalations_total", rung="small", model="small-m", reason="custom:is_json") == 2
    assert v("cascade_escalations_total", rung="medium", model="medium-m", reason="custom:is_json") == 1
    assert v("cascade_escalations_total", rung="large", model="large-m", reason="custom:is_json") == 1
    assert v("cascade_retries_total", rung="small", model="small-m") == 2
    assert v("cascade_errors_total", rung="small", model="small-m", kind="transient") == 1
    total = sum((v("cascade_cost_usd_total", rung=n, model=f"{n}-m") or 0.0) for n in PRICES)
    assert total == pytest.approx(sum(r.cost_usd for r in results))
    assert v("cascade_attempt_latency_seconds_count", rung="small", model="small-m") == 4

    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 4 and otel.pending == 0
    assert [s.attributes["cascade.request_id"] for s in roots if s.attributes] == [r.request_id for r in results]
    calls = [sum(1 for s in spans if s.parent is not None and s.parent.span_id == r.context.span_id) for r in roots]
    assert calls == [sum(a.calls > 0 for a in r.attempts) for r in results]  # a CLIENT span per attempt that called
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert sum(e["event"] == "attempt" and e["calls"] > 0 for e in lines) == len(spans) - len(roots)


def test_budget_stops_in_a_real_cascade_log(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = OpenAICompatible(server.base_url)
    ladder = Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.4, retry=FAST_RETRY),
            Rung(name="large", provider=p, model="large-m", price_in=10, price_out=30, retry=FAST_RETRY),
        ]
    )
    server.script(
        "small-m", Reply(content=BAD, tokens_in=100, tokens_out=10), Reply(content=GOOD, tokens_in=100, tokens_out=10)
    )
    log = tmp_path / "budget.jsonl"
    with Cascade(ladder, validators=[is_json], log=log, budget_usd=5e-5) as cascade:
        with pytest.raises(CascadeExhausted):  # small fails; large cannot be afforded: skipped
            cascade.run_sync(MSG)
        assert cascade.run_sync(MSG).answered_by == "small"
    assert main(["stats", "--json", str(log)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["requests"] == 2 and d["budget_stops"] == {"count": 1, "rate": 0.5}
    assert d["final_failures"]["by_reason"] == {"budget_exhausted": 1}
    lg = d["by_rung"]["large"]
    assert (lg["reached"], lg["skipped"], lg["escalated"], lg["escalation_rate"], lg["cost_usd"]) == (1, 1, 0, 0.0, 0.0)
    assert d["by_reason"]["budget_exhausted"]["count"] == 1 and d["by_reason"]["custom:is_json"]["count"] == 1
    assert d["cost_usd"] == pytest.approx(2 * cost("small", 100, 10))


def test_validator_scores_of_a_real_cascade_reach_the_stats(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A validator's verdict score, as the engine logs it, is what ``by_rung.*.scores`` summarises."""
    from cascade import Verdict
    from cascade.validators import check

    @check(name="length_score")
    def length_score(candidate: Any) -> Verdict:
        s = len(candidate.text) / 100
        return Verdict(s >= 0.2, "ok" if s >= 0.2 else "too_short", s)

    p = OpenAICompatible(server.base_url)
    ladder = Ladder([Rung(name=n, provider=p, model=f"{n}-m", price_in=1, price_out=1) for n in ("small", "large")])
    texts = ["x" * n for n in (5, 10, 15, 30, 40, 50)]  # small: three too short, three accepted
    server.script("small-m", *(Reply(content=t) for t in texts))
    server.script("large-m", *(Reply(content="y" * 90) for _ in range(3)))
    log = tmp_path / "scores.jsonl"
    with Cascade(ladder, validators=[length_score], log=log) as cascade:
        for _ in texts:
            cascade.run_sync(MSG)
    assert main(["stats", "--json", str(log)]) == 0
    d = json.loads(capsys.readouterr().out)
    small = d["by_rung"]["small"]["scores"]["length_score"]
    assert small["count"] == 6 and (small["min"], small["max"]) == (0.05, 0.5)
    assert abs(small["p50"] - 0.15) <= 0.0025 + 1e-9  # nearest rank 3 of 0.05, 0.10, 0.15, 0.30, 0.40, 0.50
    assert d["by_rung"]["large"]["scores"]["length_score"]["count"] == 3
    assert d["by_rung"]["small"]["reasons"] == {"too_short": 3}
