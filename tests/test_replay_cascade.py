import json

from cascade._cli import main
from cascade.replay import Policy, RungPolicy
from cascade.replay._run import run_policy_sync
from tests.replay_helpers import PRICES, dataset, tiny, write


def _policy(thr: float) -> Policy:
    rungs = [RungPolicy(m, 1, [0.0, 1.0], *PRICES[m], identity=True) for m in ("cheap", "mid", "top")]
    return Policy("tiny", "confidence", rungs, thr, method="fixed")


def test_real_cascade_equals_simulation_and_ledger():
    ds = dataset(tiny())
    recs = ds.split("test")
    pol = _policy(0.8)
    outs = run_policy_sync(ds, pol, recs)
    # q0, q1 accepted by cheap (conf 0.9, 0.95); q2, q3 go to the top (mid's 0.5 < 0.8)
    assert [o.rung for o in outs] == [0, 0, 2, 2]
    assert all(o.correct for o in outs)
    assert [o.cost_usd for o in outs] == [p[2] for p in map(pol.decide, recs)]
    assert outs[2].cost_usd == (110 + 550 + 2200) / 1e6


def test_cli_eval_json_keys_and_tune_writes_policy(tmp_path, capsys):
    path = write(tmp_path / "tiny.jsonl.gz", tiny())
    assert main(["eval", str(path), "--ladder", "cheap,mid,top", "--validator", "confidence",
                 "--thresholds", "0.8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "cost_per_query", "best_single", "cost_ratio_vs_best", "oracle", "apgr", "hull_auc"):
        assert key in rep
    assert set(rep["best_single"]) >= {"model", "accuracy", "cost_per_query"}
    assert rep["accuracy"] == 1.0 and rep["best_single"]["model"] == "top"
    assert rep["engine_equals_simulation"] is True
    assert rep["rungs"][0]["escalation_rate"] == 0.5
    out = tmp_path / "pol.json"
    assert main(["tune", str(path), "--ladder", "cheap,top", "--validator", "confidence", "--split", "test",
                 "--epsilon", "0.5", "--out", str(out)]) == 0
    assert Policy.load(out).models[-1] == "top"
    assert "Cascade(Ladder(rungs))" in capsys.readouterr().out


def test_cli_unknown_model_is_a_clear_error(tmp_path, capsys):
    path = write(tmp_path / "tiny.jsonl.gz", tiny())
    assert main(["eval", str(path), "--ladder", "cheap,gpt-9", "--validator", "confidence"]) == 2
    assert "gpt-9" in capsys.readouterr().err
