import json
from pathlib import Path

import pytest
from replay_helpers import PRICES, dataset, tiny, tune_tiny, voting_records, write

from cascade._cli import main
from cascade.replay import Policy, RungPolicy
from cascade.replay._run import run_policy_sync


def _policy(thr: float) -> Policy:
    rungs = [RungPolicy(m, 1, [0.0, 1.0], *PRICES[m], identity=True) for m in ("cheap", "mid", "top")]
    return Policy("tiny", "confidence", rungs, thr, method="fixed")


def test_real_cascade_equals_simulation_and_ledger() -> None:
    ds = dataset(tiny())
    recs = ds.split("test")
    pol = _policy(0.8)
    outs = run_policy_sync(ds, pol, recs)
    # q0, q1 accepted by cheap (conf 0.9, 0.95); q2, q3 go to the top (mid's 0.5 < 0.8)
    assert [o.rung for o in outs] == [0, 0, 2, 2]
    assert all(o.correct for o in outs)
    assert [o.cost_usd for o in outs] == [p[2] for p in map(pol.decide, recs)]
    assert outs[2].cost_usd == (110 + 550 + 2200) / 1e6


def test_cli_eval_json_keys_and_tune_writes_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "tiny.jsonl.gz", tiny())
    assert (
        main(
            [
                "eval",
                str(path),
                "--ladder",
                "cheap,mid,top",
                "--validator",
                "confidence",
                "--thresholds",
                "0.8",
                "--json",
            ]
        )
        == 0
    )
    rep = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "cost_per_query", "best_single", "cost_ratio_vs_best", "oracle", "apgr", "hull_auc"):
        assert key in rep
    assert set(rep["best_single"]) >= {"model", "accuracy", "cost_per_query"}
    assert rep["accuracy"] == 1.0 and rep["best_single"]["model"] == "top"
    assert rep["engine_equals_simulation"] is True
    assert rep["rungs"][0]["escalation_rate"] == 0.5
    out = tmp_path / "pol.json"
    ltt = ["--epsilon", "0.5", "--method", "ltt", "--target", "agreement"]
    # NOT certified: a CI step that tunes must fail, not carry on
    assert main(tune_tiny(path, *ltt, "--out", str(out))) == 1
    assert Policy.load(out).models[-1] == "top"  # asked for with --out: written, and said to be uncertified
    text = capsys.readouterr().out
    assert "NOT certified" in text and "(not certified)" in text
    assert "Cascade.from_policy" not in text  # no snippet to paste for a policy without its guarantee


def test_cli_unknown_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "tiny.jsonl.gz", tiny())
    assert main(["eval", str(path), "--ladder", "cheap,gpt-9", "--validator", "confidence"]) == 2
    assert "gpt-9" in capsys.readouterr().err


def test_self_consistency_draws_samples_through_the_engine() -> None:
    ds = dataset(voting_records())
    recs = ds.split("test")
    rungs = [
        RungPolicy("voter", 4, [0.0, 1.0], *PRICES["voter"], identity=True),
        RungPolicy("top", 1, [0.0, 1.0], *PRICES["top"], identity=True),
    ]
    pol = Policy("votes", "consistency", rungs, 0.75)
    outs = run_policy_sync(ds, pol, recs)
    assert [o.rung for o in outs] == [0, 1, 0]  # share 1.0, 0.5, 1.0 against threshold 0.75
    assert [o.correct for o in outs] == [True, True, False]
    voter_cost = (1000 * 2.0 + 4 * 5 * 3.0) / 1e6  # prompt once, four samples' output tokens
    assert outs[0].cost_usd == pytest.approx(voter_cost, rel=1e-12)
    assert outs[1].cost_usd == pytest.approx(voter_cost + (100 + 10) * 20.0 / 1e6, rel=1e-12)
    assert [o.cost_usd for o in outs] == pytest.approx([d[2] for d in map(pol.decide, recs)], rel=1e-12)


def test_fitted_agreement_and_consistency_policies_replay_identically() -> None:
    from cascade.replay._fit import fit_policy

    ds = dataset(tiny())
    pol = fit_policy(ds, ["cheap", "mid", "top"], "agreement", split="test", epsilon=0.6, delta=0.5, method="empirical")
    recs = ds.split("test")
    outs = run_policy_sync(ds, pol, recs)
    assert [o.rung for o in outs] == [d[0] for d in map(pol.decide, recs)]
    assert [o.cost_usd for o in outs] == pytest.approx([d[2] for d in map(pol.decide, recs)], rel=1e-12)
    vds = dataset(voting_records())
    vpol = fit_policy(
        vds, ["voter", "top"], "consistency", split="test", epsilon=0.5, delta=0.5, method="empirical", ks=(2, 4)
    )
    vouts = run_policy_sync(vds, vpol, vds.split("test"))
    vfast = [vpol.decide(r) for r in vds.split("test")]
    assert [o.rung for o in vouts] == [d[0] for d in vfast]
    assert [o.cost_usd for o in vouts] == pytest.approx([d[2] for d in vfast], rel=1e-12)


def test_policy_round_trips_through_json(tmp_path: Path) -> None:
    pol = _policy(0.7)
    pol.save(tmp_path / "p.json")
    again = Policy.load(tmp_path / "p.json")
    assert again.to_json() == pol.to_json()
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    from cascade import ConfigError

    with pytest.raises(ConfigError, match="format"):
        Policy.load(tmp_path / "bad.json")


def test_cli_fixed_threshold_self_consistency_votes_over_the_recorded_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "votes.jsonl.gz", voting_records())
    base = ["eval", str(path), "--ladder", "voter,top", "--validator", "consistency", "--thresholds", "0.75", "--json"]
    assert main(base) == 0  # default: all 4 samples vote; shares 1.0, 0.5, 1.0
    rep = json.loads(capsys.readouterr().out)
    assert [r["k"] for r in rep["rungs"]] == [4, 1]
    assert [(r["reached"], r["answered"]) for r in rep["rungs"]] == [(3, 2), (1, 1)]
    assert rep["accuracy"] == pytest.approx(2 / 3)  # v2's unanimous wrong vote is accepted
    assert main([*base, "--samples", "2"]) == 0  # cot, pot interleaved: v1 votes A, C: share 0.5
    rep = json.loads(capsys.readouterr().out)
    assert [r["k"] for r in rep["rungs"]] == [2, 1] and rep["rungs"][0]["answered"] == 2
    assert main([*base, "--samples", "5"]) == 2
    assert "--samples" in capsys.readouterr().err
