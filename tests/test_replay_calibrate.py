import random
from typing import Any

import numpy as np
import pytest
from replay_helpers import dataset, synthetic

from cascade.replay import Policy
from cascade.replay._fit import (
    clopper_pearson_upper,
    fit_logistic,
    fit_policy,
)


def test_clopper_pearson_known_values() -> None:
    # zero errors: the bound solves (1 - p)^n = delta
    assert clopper_pearson_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert clopper_pearson_upper(5, 5, 0.1) == 1.0
    assert clopper_pearson_upper(3, 100, 0.1) > 0.03
    assert clopper_pearson_upper(3, 100, 0.1) < clopper_pearson_upper(3, 100, 0.01)


@pytest.mark.parametrize(("errors", "n", "delta"), [(1, 20, 0.1), (3, 100, 0.05), (12, 285, 0.1 / 7), (40, 1031, 0.01)])
def test_clopper_pearson_is_the_exact_binomial_tail_bound(errors: int, n: int, delta: float) -> None:
    """The upper bound u is the rate at which seeing <= ``errors`` of ``n`` has probability exactly delta:
    any rate above it would make the observed count rarer than delta."""
    from scipy.stats import binom

    u = clopper_pearson_upper(errors, n, delta)
    assert binom.cdf(errors, n, u) == pytest.approx(delta, rel=1e-6)
    assert binom.cdf(errors, n, u * 0.99) > delta > binom.cdf(errors, n, min(1.0, u * 1.01))


def test_fit_logistic_recovers_slope_sign() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(0.5 + 2 * x)))).astype(float)
    a, b = fit_logistic(x, y)
    w = fit_logistic(np.c_[x, rng.normal(size=2000)], y)
    assert len(w) == 3 and abs(w[2]) < 0.3  # an irrelevant feature gets a small weight
    assert a == pytest.approx(0.5, abs=0.25) and b == pytest.approx(2.0, abs=0.4)


def true_risk(pol: Policy) -> float:
    """Exact out-of-sample disagreement of a fitted policy under the synthetic law
    P(cheap agrees | conf) = 0.3 + 0.65 conf, conf ~ U(0, 1): integrate over the accepted confidences."""
    if pol.models == ["top"]:
        return 0.0
    grid = np.linspace(0, 1, 20001)
    w0, w1 = pol.rungs[0].w
    logit = np.log(np.clip(grid, 1e-6, 1 - 1e-6) / (1 - np.clip(grid, 1e-6, 1 - 1e-6)))
    accepted = 1 / (1 + np.exp(-(w0 + w1 * logit))) >= pol.threshold
    return float(np.mean(np.where(accepted, 0.7 - 0.65 * grid, 0.0)))


@pytest.mark.parametrize("method", ["ltt", "ltt-split"])
def test_ltt_guarantee_holds_out_of_sample(method: str) -> None:
    """Refit on fresh samples of 120; the true risk exceeds epsilon in at most delta of the fits."""
    rng = random.Random(1)
    eps, delta, runs = 0.12, 0.2, 60
    violations = 0
    saved = []
    for _ in range(runs):
        fit = dataset(synthetic(120, rng))
        pol = fit_policy(fit, ["cheap", "top"], "confidence", epsilon=eps, delta=delta, max_rungs=2, method=method)
        violations += true_risk(pol) > eps
        saved.append(pol.models != ["top"])
    assert violations / runs <= delta
    assert sum(saved) > runs / 2  # the bound is not vacuous: it usually certifies a cheaper ladder


def test_empirical_method_violates_more_often_than_ltt() -> None:
    rng = random.Random(2)
    eps = 0.12
    bad = {"ltt": 0, "empirical": 0}
    for _ in range(40):
        fit = dataset(synthetic(60, rng))
        for method in bad:
            pol = fit_policy(fit, ["cheap", "top"], "confidence", epsilon=eps, delta=0.1, method=method)
            bad[method] += true_risk(pol) > eps
    assert bad["empirical"] >= 8  # tuning to the sample's own risk overshoots about half the time
    assert bad["ltt"] <= 4


def top_sometimes_wrong(n: int) -> list[dict[str, Any]]:
    """cheap is always right and confident; top is wrong on every fifth query (so they disagree there)."""
    from replay_helpers import PRICES, entry, record

    return [
        record(
            f"w{i}",
            "A",
            {
                "cheap": entry(["A"], "A", [0.9], price=PRICES["cheap"]),
                "top": entry(["B" if i % 5 == 0 else "A"], "A", [0.9], price=PRICES["top"]),
            },
            split="train",
        )
        for i in range(n)
    ]


def test_loss_target_does_not_count_disagreements_where_the_top_rung_is_wrong() -> None:
    ds = dataset(top_sometimes_wrong(100))
    # disagreement with the top is 20% > epsilon: only the top rung alone is certified
    agree = fit_policy(ds, ["cheap", "top"], "confidence", target="agreement", epsilon=0.1)
    assert agree.models == ["top"]
    # wrong-where-the-top-is-right never happens: cheap answers everything, with a certified bound
    loss = fit_policy(ds, ["cheap", "top"], "confidence", target="loss", epsilon=0.1)
    assert loss.models == ["cheap", "top"] and loss.fit["risk"] == 0 and loss.fit["certified_ok"]
    assert loss.fit["risk_bound"] == pytest.approx(clopper_pearson_upper(0, 100, 0.1 / 2))
    assert loss.fit["accuracy"] == 1.0 and loss.fit["top_accuracy"] == pytest.approx(0.8)


def test_report_measures_the_loss_through_the_engine() -> None:
    from cascade.replay._report import evaluate

    recs = top_sometimes_wrong(50)
    for r in recs[:10]:  # now cheap is wrong (and unsure) on 10 queries, 8 of which the top gets right
        r["responses"]["cheap"]["samples"][0].update(answer="C", text="C", correct=False, confidence=0.2)
    ds = dataset(recs)
    pol = fit_policy(ds, ["cheap", "top"], "confidence", target="loss", epsilon=0.3, method="empirical")
    pol.threshold = 0.0  # accept every cheap answer: the loss is exactly the 8 queries above
    rep = evaluate(ds, pol, "train")
    assert rep["engine_equals_simulation"] and rep["risk_on_split"] == pytest.approx(8 / 50)
    assert rep["accuracy"] == pytest.approx(40 / 50)


def test_accuracy_target_bounds_the_error_of_the_cascade() -> None:
    ds = dataset(top_sometimes_wrong(100))  # top is wrong on 20 of 100, cheap always right
    pol = fit_policy(ds, ["cheap", "top"], "confidence", target="accuracy", epsilon=0.1)
    assert pol.models == ["cheap", "top"] and pol.fit["risk"] == 0 and pol.fit["accuracy"] == 1.0
    assert pol.fit["risk_bound"] == pytest.approx(clopper_pearson_upper(0, 100, 0.1 / 2))
    # an error target below the top rung's own 20% with nothing better: not certified, top alone is returned
    recs = top_sometimes_wrong(100)
    for r in recs:
        r["responses"]["cheap"] = r["responses"]["top"]
    worse = fit_policy(dataset(recs), ["cheap", "top"], "confidence", target="accuracy", epsilon=0.1)
    assert worse.models == ["top"] and not worse.fit["certified_ok"] and worse.fit["risk"] == pytest.approx(0.2)
