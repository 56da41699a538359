"""The library's own validators (Confidence, SelfConsistency) run unchanged on replayed completions
and take the same decisions as the replay policy at the same (uncalibrated) threshold."""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from replay_helpers import PRICES, dataset, tiny, voting_records

from cascade import Cascade, CascadeResult, Ladder, RetryPolicy, Rung
from cascade.replay import Dataset, Policy, Record, ReplayProvider, RungPolicy, load_dataset
from cascade.replay._data import default_data_dir
from cascade.validators import Confidence, SelfConsistency


def _run(ds: Dataset, rungs: list[Rung], records: Sequence[Record]) -> list[CascadeResult[Any]]:
    cascade = Cascade(Ladder(rungs), on_exhausted="best_effort")
    inputs = [{"messages": list(r.messages), "extra": {"replay_id": r.id}} for r in records]
    return asyncio.run(cascade.map(inputs))


def _rung(
    provider: ReplayProvider, model: str, validators: Any, prices: Mapping[str, tuple[float, float]] = PRICES
) -> Rung:
    return Rung(
        name=model,
        provider=provider,
        model=model,
        price_in=prices[model][0],
        price_out=prices[model][1],
        validators=validators,
        retry=RetryPolicy(attempts=1),
    )


def test_confidence_validator_on_replay_matches_policy() -> None:
    ds = dataset(tiny())
    p = ReplayProvider(ds)
    results = _run(
        ds,
        [_rung(p, "cheap", Confidence(0.8)), _rung(p, "mid", Confidence(0.8)), _rung(p, "top", [])],
        ds.split("test"),
    )
    pol = Policy(
        "tiny",
        "confidence",
        [RungPolicy(m, 1, [0.0, 1.0], *PRICES[m], identity=True) for m in ("cheap", "mid", "top")],
        0.8,
    )
    fast = [pol.decide(r) for r in ds.split("test")]
    assert [r.answered_by for r in results] == [pol.models[f[0]] for f in fast]
    assert [r.cost_usd for r in results] == pytest.approx([f[2] for f in fast], rel=1e-12)


def test_self_consistency_validator_on_replay_matches_policy() -> None:
    ds = dataset(voting_records())
    p = ReplayProvider(ds, order="interleave")
    results = _run(
        ds, [_rung(p, "voter", SelfConsistency(samples=4, threshold=0.75)), _rung(p, "top", [])], ds.split("test")
    )
    pol = Policy(
        "votes",
        "consistency",
        [
            RungPolicy("voter", 4, [0.0, 1.0], *PRICES["voter"], identity=True),
            RungPolicy("top", 1, [0.0, 1.0], *PRICES["top"], identity=True),
        ],
        0.75,
    )
    fast = [pol.decide(r) for r in ds.split("test")]
    assert [r.answered_by for r in results] == [pol.models[f[0]] for f in fast]
    assert [r.cost_usd for r in results] == pytest.approx([f[2] for f in fast], rel=1e-12)


@pytest.mark.skipif(not (default_data_dir() / "mmlu.jsonl.gz").exists(), reason="recorded data not found")
def test_confidence_validator_reads_recorded_logprobs_on_mmlu() -> None:
    ds = load_dataset("mmlu")
    recs = ds.split("test")[:300]
    p = ReplayProvider(ds)
    prices = {m.model: (m.price_in, m.price_out) for m in ds.models}
    rungs = [_rung(p, m, v, prices) for m, v in (("gpt-4o-mini", Confidence(0.9)), ("llama3.1-405b", []))]
    results = _run(ds, rungs, recs)
    accepted_cheap = [r.answered_by == "gpt-4o-mini" for r in results]
    recorded = [(r.responses["gpt-4o-mini"].samples[0].confidence or 0) >= 0.9 for r in recs]
    assert accepted_cheap == recorded
    assert 0 < sum(accepted_cheap) < len(recs)


def _edited(edits: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """tiny() with cheap's sample replaced per record id (text, logprob, confidence, ...)."""
    recs = tiny()
    for r in recs:
        r["responses"]["cheap"]["samples"][0].update(edits.get(r["id"], {}))
    return recs


def test_confidence_validator_reads_a_recorded_logprob() -> None:
    """No recorded confidence, only a logprob: the provider serves it as ``Completion.logprobs`` and the
    library's Confidence check turns it back into a probability."""
    import math

    edits = {
        rid: {"confidence": None, "logprob": math.log(p)}
        for rid, p in (("q0", 0.9), ("q1", 0.85), ("q2", 0.3), ("q3", 0.79))
    }
    ds = dataset(_edited(edits))
    p = ReplayProvider(ds)
    results = _run(ds, [_rung(p, "cheap", Confidence(0.8)), _rung(p, "top", [])], ds.split("test"))
    assert [r.answered_by for r in results] == ["cheap", "cheap", "top", "top"]
    first = results[0].attempts[0]
    assert first.verdicts[0].score == pytest.approx(0.9)


def test_json_schema_validator_reads_replayed_text_and_ledger_gets_recorded_tokens() -> None:
    from cascade.validators import JsonSchema

    schema = {"type": "object", "properties": {"label": {"enum": ["A", "B", "C"]}}, "required": ["label"]}
    edits = {
        "q0": {"text": '{"label": "A"}'},
        "q1": {"text": "The answer is A."},
        "q2": {"text": '```json\n{"label": "B"}\n```'},
        "q3": {"text": '{"label": "Z"}'},
    }
    ds = dataset(_edited(edits))
    p = ReplayProvider(ds)
    results = _run(ds, [_rung(p, "cheap", JsonSchema(schema)), _rung(p, "top", [])], ds.split("test"))
    assert [r.answered_by for r in results] == ["cheap", "top", "cheap", "top"]
    assert results[0].parsed == {"label": "A"} and results[2].parsed == {"label": "B"}
    reasons = [a.verdicts[0].reason for r in results for a in r.attempts if a.rung == "cheap"]
    assert reasons == ["ok", "json_unparseable", "ok", "schema_invalid"]
    # the ledger charges what was recorded: 100 prompt + 10 output tokens per call, and their recorded cost
    assert (results[1].tokens_in, results[1].tokens_out) == (200, 20)
    assert results[1].cost_usd == pytest.approx((100 + 10) * (PRICES["cheap"][0] + PRICES["top"][0]) / 1e6)
