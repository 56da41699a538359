import pytest
from replay_helpers import PRICES, dataset, tiny

from cascade.replay import accuracy, apgr, best_single, cost_per_query, hull_auc, oracle, single_models, upper_hull
from cascade.replay._metrics import cost_at_accuracy


def test_accuracy_and_cost() -> None:
    assert accuracy([True, False, True, True]) == 0.75
    assert accuracy([]) == 0.0
    assert cost_per_query([1.0, 2.0, 3.0]) == 2.0


def test_single_models_best_and_oracle_on_known_recording() -> None:
    ds = dataset(tiny())
    recs = ds.split("test")
    singles = {s.model: s for s in single_models(recs, PRICES)}
    assert singles["cheap"].accuracy == 0.5 and singles["mid"].accuracy == 0.75 and singles["top"].accuracy == 1.0
    assert singles["cheap"].cost_per_query == pytest.approx(110 / 1e6)
    assert singles["top"].cost_per_query == pytest.approx(2200 / 1e6)
    assert best_single(list(singles.values())).model == "top"
    cost, acc = oracle(recs, PRICES, ["cheap", "mid", "top"])
    # q0, q1: cheap only (110e-6); q2: cheap + mid (110 + 550); q3: all three (110 + 550 + 2200)
    assert acc == 1.0
    assert cost == pytest.approx((110 + 110 + 660 + 2860) / 4 / 1e6)


def test_best_single_tie_goes_to_cheaper() -> None:
    from cascade.replay._metrics import SingleModel

    assert best_single([SingleModel("a", 0.8, 2.0), SingleModel("b", 0.8, 1.0)]).model == "b"


def test_upper_hull_drops_dominated_and_concave_violations() -> None:
    pts = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.9), (4.0, 0.8), (5.0, 0.95)]
    assert upper_hull(pts) == [(1.0, 0.5), (3.0, 0.9), (5.0, 0.95)]


def test_hull_auc_is_mean_accuracy_over_cost_range() -> None:
    # (1, 0.5) lies below the chord from (0, 0.5) to (2, 1.0): the hull is that chord, mean 0.75
    assert hull_auc([(0.0, 0.5), (1.0, 0.5), (2.0, 1.0)], 0.0, 2.0) == pytest.approx(0.75)
    # a concave curve: 0.5 -> 0.9 over [0, 1], then 0.9 -> 1.0 over [1, 2]: area 0.7 + 0.95 over width 2
    assert hull_auc([(0.0, 0.5), (1.0, 0.9), (2.0, 1.0)], 0.0, 2.0) == pytest.approx(0.825)
    # beyond the last vertex the hull stays flat
    assert hull_auc([(0.0, 1.0)], 0.0, 4.0) == pytest.approx(1.0)
    # below the cheapest point there is no operating point: accuracy 0, a step (not a ramp from 0)
    assert hull_auc([(1.0, 1.0)], 0.0, 2.0) == pytest.approx(0.5)
    assert hull_auc([(2.0, 1.0)], 0.0, 2.0) == 0.0
    assert hull_auc([], 0.0, 2.0) == 0.0
    with pytest.raises(ValueError, match="lo < hi"):
        hull_auc([(0.0, 1.0)], 1.0, 1.0)


def test_apgr_random_mixing_is_half_and_oracle_like_is_near_one() -> None:
    weak, strong = (1.0, 0.6), (3.0, 0.9)
    assert apgr([], weak, strong) == pytest.approx(0.5)
    # reaching the strong accuracy at the weak cost recovers the whole gap
    assert apgr([(1.0, 0.9)], weak, strong) == pytest.approx(1.0)
    # halfway in cost, full accuracy: 0.75 of the gap on average
    assert apgr([(2.0, 0.9)], weak, strong) == pytest.approx(0.75)


def test_cost_at_accuracy() -> None:
    pts = [(1.0, 0.7), (2.0, 0.85), (3.0, 0.9)]
    assert cost_at_accuracy(pts, 0.8) == 2.0
    assert cost_at_accuracy(pts, 0.95) is None


def test_report_figures_on_known_recording() -> None:
    """Every figure of ``evaluate`` (replayed through the real Cascade) on the 4-query recording,
    worked out by hand. Costs in micro-dollars: cheap 110, mid 550, top 2200 per call."""
    from cascade.replay import Policy, RungPolicy
    from cascade.replay._report import evaluate

    ds = dataset(tiny())
    rungs = [RungPolicy(m, 1, [0.0, 1.0], *PRICES[m], identity=True) for m in ("cheap", "mid", "top")]
    rep = evaluate(ds, Policy("tiny", "confidence", rungs, 0.8, method="fixed"), "test")
    u = 1e-6
    # q0, q1: cheap accepts (0.9, 0.95 >= 0.8); q2, q3: cheap and mid (0.5) refuse, top answers
    assert rep["engine_equals_simulation"] is True
    assert rep["accuracy"] == 1.0
    assert rep["cost_per_query"] == pytest.approx((110 + 110 + 2860 + 2860) / 4 * u)
    assert rep["best_single"] == {"model": "top", "accuracy": 1.0, "cost_per_query": pytest.approx(2200 * u)}
    assert rep["cost_ratio_vs_best"] == pytest.approx(1485 / 2200)
    assert rep["oracle"] == {"accuracy": 1.0, "cost_per_query": pytest.approx(935 * u)}
    assert [(r["reached"], r["answered"], r["escalation_rate"]) for r in rep["rungs"]] == [
        (4, 2, 0.5),
        (2, 0, 1.0),
        (2, 2, 0.0),
    ]
    # the threshold sweep: > .95 all top (2860, 1.0); (.9, .95] q1 cheap (2172.5, 1.0); (.5, .9] (1485, 1.0);
    # (.3, .5] mid answers q2 right, q3 wrong (385, 0.75); at .3 cheap also takes q2, wrongly (247.5, 0.5)
    pts = {(round(p["cost_per_query"] / u, 6), p["accuracy"]) for p in rep["sweep"]}
    assert pts == {(2860, 1.0), (2172.5, 1.0), (1485, 1.0), (385, 0.75), (247.5, 0.5)}
    # matched accuracy (>= 1.0 - 0.005): the cheapest such sweep point is 1485
    assert rep["cost_ratio_at_matched_accuracy"] == pytest.approx(1485 / 2200)
    # hull over [cheapest single 110, dearest 2200]: 0 up to 247.5, then 247.5 -> 385 -> 1485, flat to 2200
    auc = ((0.5 + 0.75) / 2 * 137.5 + (0.75 + 1.0) / 2 * 1100 + 1.0 * 715) / 2090
    assert rep["hull_auc"] == pytest.approx(auc)
    # APGR adds weak (cheap: 110, 0.5) and strong (top: 2200, 1.0) to the hull, over [110, 2200]
    apgr_auc = ((0.5 + 0.75) / 2 * 275 + (0.75 + 1.0) / 2 * 1100 + 1.0 * 715) / 2090
    assert rep["apgr"] == pytest.approx((apgr_auc - 0.5) / 0.5)
    assert not rep["goal_met"]  # 67.5% of the best single model's cost
