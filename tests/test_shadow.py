"""The shadow audit: accepted answers sampled to the top rung after they are returned, compared, logged,
and estimated; its spend is its own, and a failing audit never touches the request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade import Cascade, Completion, CompletionRequest, ConfigError, FunctionProvider, MemorySink, Rung, Shadow
from cascade._errors import ProviderError
from cascade._shadow import estimate_from_events, wilson
from cascade.validators import check

Q = [[{"role": "user", "content": f"question {i}"}] for i in range(40)]


def _ladder(cheap: Any, top: Any, cheap_check: Any = None) -> list[Rung]:
    return [
        Rung(name="cheap", provider=FunctionProvider(cheap), model="c", price_in=1.0, price_out=1.0,
             validators=cheap_check or check(lambda c: True, name="always")),
        Rung(name="top", provider=FunctionProvider(top), model="t", price_in=10.0, price_out=10.0),
    ]  # fmt: skip


def _answer(text: str) -> Completion:
    return Completion(text=text, tokens_in=100, tokens_out=10)


def _question(request: CompletionRequest) -> int:
    return int(str(request.messages[-1]["content"]).split()[-1])


async def _run_all(cascade: Cascade) -> list[Any]:
    out = [await cascade.run(q) for q in Q]
    await cascade.aclose()  # waits for the audits still running
    return out


def test_every_sampled_answer_is_compared_with_the_top_and_estimated() -> None:
    sink = MemorySink()
    top_calls: list[int] = []

    def top(request: CompletionRequest) -> Completion:
        top_calls.append(_question(request))
        return _answer("B" if _question(request) % 4 == 0 else " a.")  # disagrees on 1 in 4

    cheap_check = check(lambda c: _question_of(c) % 5 != 0, name="some")  # 1 in 5 escalates to the top
    cascade = Cascade(_ladder(lambda r: _answer("A"), top, cheap_check), log=sink, shadow=Shadow(rate=1.0))
    results = asyncio.run(_run_all(cascade))
    below = [r for r in results if r.answered_by == "cheap"]
    assert len(below) == 32
    assert all(r.cost_usd == pytest.approx((100 + 10) / 1e6) for r in below)  # the audit is not the request's
    events = sink.of("shadow")
    assert len(events) == 32 and {e["rung"] for e in events} == {"cheap"}
    disagreed = [e for e in events if e["outcome"] == "disagree"]
    assert len(disagreed) == sum(1 for i in range(40) if i % 5 != 0 and i % 4 == 0)
    est = cascade.shadow.estimate() if cascade.shadow else None
    assert est is not None and est.compared == 32 and est.disagreed == len(disagreed)
    assert est.lost_vs_top == pytest.approx(len(disagreed) / 40)
    lo, hi = est.lost_ci or (0.0, 0.0)
    assert est.lost_vs_top is not None
    assert lo <= est.lost_vs_top <= hi
    assert estimate_from_events(sink.events) == est  # the same estimate from the log
    assert all(e["cost_usd"] == pytest.approx(110 * 10 / 1e6) for e in events)
    assert est.spent_usd == pytest.approx(32 * 110 * 10 / 1e6)


def _question_of(candidate: Any) -> int:
    return int(str(candidate.messages[-1]["content"]).split()[-1])


def test_the_answer_is_returned_before_the_audit_calls_the_top() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def top(request: CompletionRequest) -> Completion:
            await gate.wait()  # the top answers only once the caller has its answer
            return _answer("A")

        sink = MemorySink()
        cascade = Cascade(_ladder(lambda r: _answer("A"), top), log=sink, shadow=Shadow(rate=1.0))
        result = await asyncio.wait_for(cascade.run(Q[0]), 10)  # would never return if the audit blocked it
        assert result.answered_by == "cheap" and sink.of("shadow") == []
        gate.set()
        await cascade.aclose()
        assert [e["outcome"] for e in sink.of("shadow")] == ["agree"]

    asyncio.run(scenario())


def test_the_audit_has_its_own_budget_and_failures_stay_off_the_request() -> None:
    calls: list[int] = []

    def top(request: CompletionRequest) -> Completion:
        calls.append(1)
        return _answer("A")

    sink = MemorySink()
    # a zero budget affords no shadow call: every audit is skipped, none is made
    shadow = Shadow(rate=1.0, budget_usd=0.0)
    cascade = Cascade(_ladder(lambda r: _answer("A"), top), log=sink, shadow=shadow)
    asyncio.run(_run_all(cascade))
    assert calls == [] and {e["outcome"] for e in sink.of("shadow")} == {"skipped"}
    assert {e["reason"] for e in sink.of("shadow")} == {"shadow_budget_exhausted"}

    def broken(request: CompletionRequest) -> Completion:
        raise ProviderError("rung_fatal", "server_error", "the top is down")

    sink = MemorySink()
    cascade = Cascade(_ladder(lambda r: _answer("A"), broken), log=sink, shadow=Shadow(rate=1.0))
    results = asyncio.run(_run_all(cascade))
    assert all(r.accepted and r.answered_by == "cheap" for r in results)
    assert {e["outcome"] for e in sink.of("shadow")} == {"error"}
    assert cascade.shadow is not None and cascade.shadow.estimate().compared == 0


def test_sampling_rate_and_seed() -> None:
    def run(rate: float, seed: int) -> int:
        sink = MemorySink()
        cascade = Cascade(_ladder(lambda r: _answer("A"), lambda r: _answer("A")), log=sink,
                          shadow=Shadow(rate=rate, seed=seed))  # fmt: skip
        asyncio.run(_run_all(cascade))
        return len(sink.of("shadow"))

    assert run(0.0, 1) == 0
    assert run(0.5, 7) == run(0.5, 7)
    assert 0 < run(0.5, 7) < 40


@pytest.mark.parametrize(
    ("kwargs", "needle"), [({"rate": 1.5}, "rate"), ({"budget_usd": -1.0}, "budget_usd"), ({"answer": 3}, "answer")]
)
def test_bad_settings_name_the_field(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Shadow(**kwargs)


def test_wilson_interval_contains_the_share() -> None:
    lo, hi = wilson(3, 100)
    assert lo < 0.03 < hi and wilson(0, 0) == (0.0, 1.0)


def test_stats_and_metrics_show_the_audit(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from cascade._cli import main

    log = tmp_path / "log.jsonl"
    sink = MemorySink()
    cascade = Cascade(
        _ladder(lambda r: _answer("A"), lambda r: _answer("B" if _question(r) % 2 else "A")),
        log=[str(log), sink],
        shadow=Shadow(rate=1.0),
    )
    asyncio.run(_run_all(cascade))
    assert main(["stats", str(log), "--json"]) == 0
    shadow = json.loads(capsys.readouterr().out)["shadow"]
    assert shadow["compared"] == 40 and shadow["disagreed"] == 20 and shadow["lost_vs_top"] == pytest.approx(0.5)
    lo, hi = shadow["lost_vs_top_ci95"]
    assert lo < 0.5 < hi
    assert main(["stats", str(log)]) == 0
    text = capsys.readouterr().out
    assert "Shadow audit" in text and "50.0%" in text

    prom = pytest.importorskip("prometheus_client", reason="the [metrics] extra is not installed")
    from cascade.metrics import PrometheusSink

    reg = prom.CollectorRegistry()
    metrics = PrometheusSink(reg)
    for e in sink.events:
        metrics.emit(e)
    assert reg.get_sample_value("cascade_shadow_audits_total", {"rung": "cheap", "outcome": "disagree"}) == 20
    assert reg.get_sample_value("cascade_shadow_audits_total", {"rung": "cheap", "outcome": "agree"}) == 20
