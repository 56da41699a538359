"""On the recorded data next to the checkout (skipped when it is absent): the real Cascade run equals
the fast path, and the single-model figures equal the catalog's."""

from pathlib import Path

import pytest

from cascade.replay import load_dataset
from cascade.replay._data import default_data_dir
from cascade.replay._fit import fit_policy
from cascade.replay._metrics import single_models
from cascade.replay._run import run_policy_sync

EXAMPLE = Path(__file__).resolve().parent.parent / "data"  # the example dataset shipped in the repository
needs_full_data = pytest.mark.skipif(
    not (default_data_dir() / "mot_date.jsonl.gz").exists(),
    reason="the full recorded data is not shipped (set CASCADE_DATA_DIR to it); data/ holds only the example",
)


def _data_dir(name: str) -> Path:
    """Where ``name`` is: the full data folder if present, else the repository's example data, else skip."""
    for d in (default_data_dir(), EXAMPLE):
        if (d / f"{name}.jsonl.gz").exists():
            return d
    pytest.skip(f"recorded dataset {name!r} not found: the full recorded data is not shipped (set CASCADE_DATA_DIR)")


@needs_full_data
def test_mot_date_self_consistency_cascade_equals_fast_path() -> None:
    ds = load_dataset("mot_date")
    pol = fit_policy(ds, ["gpt-3.5-turbo", "gpt-4"], "consistency", epsilon=0.1, ks=(4, 10))
    assert pol.models == ["gpt-3.5-turbo", "gpt-4"]  # a cheaper ladder is certified at this epsilon
    test = ds.split("test")
    outs = run_policy_sync(ds, pol, test)
    fast = [pol.decide(r) for r in test]
    assert [(o.rung, o.correct) for o in outs] == [(f[0], f[1].correct) for f in fast]
    assert sum(o.cost_usd for o in outs) == pytest.approx(sum(f[2] for f in fast), rel=1e-12)
    assert 0 < sum(o.rung == 1 for o in outs) < len(outs)


@pytest.mark.parametrize("name", ["mmlu", "medmcqa", "mot_date", "routerbench_arc_challenge", "extractgpt_ae110k"])
def test_single_model_accuracy_matches_catalog(name: str) -> None:
    """Same number of right answers as the catalog. The catalog's accuracy is over scored records only
    (``n_scored``); ours counts an unscored answer (``correct: null``) as wrong, so it is over all ``n``."""
    ds = load_dataset(name, data_dir=_data_dir(name))
    stats = ds.catalog["stats"]["test"]
    prices = {m.model: (m.price_in, m.price_out) for m in ds.models}
    for s in single_models(ds.split("test"), prices):
        st = stats[s.model]
        assert round(s.accuracy * st["n"]) == round(st["accuracy"] * st["n_scored"]), s.model
        if st["n_scored"] == st["n"]:
            assert s.accuracy == pytest.approx(st["accuracy"], abs=5e-4)
