"""The example dataset shipped in data/ is what its README says, and cascade eval / tune run on it from a clone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade._cli import main
from cascade.replay import load_dataset
from cascade.replay._fit import fit_policy
from cascade.replay._metrics import single_models
from cascade.replay._run import run_policy_sync

DATA = Path(__file__).resolve().parent.parent / "data"
FILE = DATA / "extractgpt_ae110k.jsonl.gz"
LADDER = "gpt-3.5-turbo-0613,gpt-4-0613"


def test_it_is_small_and_carries_its_licence_and_source() -> None:
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 300_000
    entry = json.loads((DATA / "catalog.json").read_text())["datasets"]["extractgpt_ae110k"]
    readme = (DATA / "README.md").read_text()
    assert entry["license"].startswith("Apache-2.0") and "Apache-2.0" in readme
    assert entry["source"]["repo"] in readme and entry["source"]["commit"] in readme


def test_single_model_figures_equal_the_catalog() -> None:
    ds = load_dataset(FILE)
    assert len(ds.split("train")) == 162 and len(ds.split("test")) == 362
    prices = {m.model: (m.price_in, m.price_out) for m in ds.models}
    stats = ds.catalog["stats"]["test"]
    for s in single_models(ds.split("test"), prices):
        assert s.accuracy == pytest.approx(stats[s.model]["accuracy"], abs=5e-4), s.model
        assert s.cost_per_query == pytest.approx(stats[s.model]["mean_cost_usd"], rel=1e-3), s.model


def test_the_real_cascade_equals_the_fitted_policy_on_it() -> None:
    ds = load_dataset(FILE)
    pol = fit_policy(ds, LADDER.split(","), "schema", epsilon=0.3)
    test = ds.split("test")
    outs = run_policy_sync(ds, pol, test)
    fast = [pol.decide(r) for r in test]
    assert [(o.rung, o.correct) for o in outs] == [(f[0], f[1].correct) for f in fast]
    assert sum(o.cost_usd for o in outs) == pytest.approx(sum(f[2] for f in fast), rel=1e-12)


def test_cascade_eval_runs_on_it_from_a_clone(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", str(FILE), "--ladder", LADDER, "--validator", "schema", "--thresholds", "0.5", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    gpt4 = next(s for s in report["single_models"] if s["model"] == "gpt-4-0613")
    # the figure README.md quotes: 2.3% of GPT-4's cost, 3.0 points below it
    assert report["cost_per_query"] / gpt4["cost_per_query"] == pytest.approx(0.023, abs=0.0005)
    assert (report["accuracy"] - gpt4["accuracy"]) * 100 == pytest.approx(-3.0, abs=0.05)


def test_cascade_tune_runs_on_it_from_a_clone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "policy.json"
    args = ["tune", str(FILE), "--ladder", LADDER, "--validator", "schema", "--epsilon", "0.3", "--out", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["dataset"] == "extractgpt_ae110k"
    assert "certified" in capsys.readouterr().out
