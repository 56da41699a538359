"""The demo's calibration split and threshold fit: tuned on one half, reported on the other."""

from __future__ import annotations

import json
from typing import Any

from cascade.demo import TICKET_TASK, load_items
from cascade.demo._calibrate import Observed, fit, load_thresholds, simulate, split_items


def test_the_splits_are_disjoint_halves_of_every_item() -> None:
    items = load_items(TICKET_TASK)
    cal, rep = split_items(items, "calibration"), split_items(items, "report")

    def ids(xs: list[dict[str, Any]]) -> set[Any]:
        return {i["id"] for i in xs}

    assert ids(cal).isdisjoint(ids(rep)) and ids(cal) | ids(rep) == ids(items)
    assert abs(len(cal) - len(rep)) <= 1 and split_items(items, "all") == items


def _obs(conf: float, correct: bool, cost: float = 1.0) -> Observed:
    return Observed(True, conf, correct, cost)


def test_fit_picks_the_cheapest_threshold_as_accurate_as_the_top() -> None:
    # The cheap rung is right when sure (>= 0.8), wrong below; the top is always right and costs 4x.
    cheap = [_obs(0.95, True), _obs(0.9, True), _obs(0.8, True), _obs(0.6, False), _obs(0.5, False)]
    top = [_obs(1.0, True, 4.0) for _ in cheap]
    thresholds, right, cost = fit([cheap], top)
    assert thresholds == [0.8] and right == 5
    assert cost == 5 * 1.0 + 2 * 4.0  # the cheap rung on all five, the top on the two it was unsure of
    assert simulate([cheap], top, [0.5]) == (3, 5.0)  # lower: cheaper but two wrong answers kept


def test_fit_leaves_out_a_rung_that_never_pays() -> None:
    # Sure and wrong: any threshold that lets it answer loses accuracy, so it is left off (None).
    cheap = [_obs(0.99, False), _obs(0.98, True), _obs(0.97, False)]
    top = [_obs(1.0, True, 2.0) for _ in cheap]
    thresholds, right, cost = fit([cheap], top)
    assert thresholds[0] is None or thresholds[0] > 0.99
    assert right == 3 and cost == 6.0


def test_shipped_thresholds_say_where_they_were_fitted() -> None:
    data = load_thresholds()
    assert set(data["tasks"]) == {"tickets", "invoices"}
    assert "calibration" in data["fitted_on"] and data["command"] == "cascade demo --calibrate"
    json.dumps(data)
