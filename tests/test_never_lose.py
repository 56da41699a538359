"""The never-lose fit: the top rung is the best model on the fitting data (not the dearest), a cascade
only where held-out data shows it holds, else that model alone."""

from __future__ import annotations

import random
from typing import Any

from replay_helpers import PRICES, dataset, entry, record

from cascade.replay._safe import fit_never_lose


def _records(n: int, rng: random.Random, *, signal: bool, dear_right: float = 0.7) -> list[dict[str, Any]]:
    """cheap: right 60%, its confidence tells when (if ``signal``); top: right 95%; dear: right ``dear_right``."""
    out = []
    for i in range(n):
        right = rng.random() < 0.6
        conf = (0.75 + 0.2 * rng.random() if right else 0.05 + 0.5 * rng.random()) if signal else rng.random()
        top_right = rng.random() < 0.95
        out.append(
            record(
                f"r{i}",
                "A",
                {
                    "cheap": entry(["A" if right else "B"], "A", [conf], price=PRICES["cheap"]),
                    "top": entry(["A" if top_right else "C"], "A", [0.9], price=PRICES["top"]),
                    "dear": entry(["A" if rng.random() < dear_right else "D"], "A", [0.9], price=(60.0, 60.0)),
                },
                split="train",
            )
        )
    return out


def test_the_dearest_model_is_dropped_when_a_cheaper_one_is_better() -> None:
    ds = dataset(_records(200, random.Random(1), signal=True))
    pol = fit_never_lose(ds, ds.records)
    assert pol.fit["top"] == "top" and "dear" not in pol.models and pol.models[-1] == "top"


def test_a_strong_signal_on_enough_data_gives_a_cascade_that_holds_out() -> None:
    ds = dataset(_records(400, random.Random(2), signal=True))
    pol = fit_never_lose(ds, ds.records)
    assert pol.fit["cascade"] and pol.models == ["cheap", "top"]
    fresh = dataset(_records(2000, random.Random(99), signal=True))
    acc = cost = top_acc = top_cost = 0.0
    for r in fresh.records:
        _, o, c = pol.decide(r)
        acc, cost = acc + o.correct, cost + c
        top_acc += bool(r.responses["top"].samples[0].correct)
        top_cost += r.responses["top"].cost_usd
    assert acc >= top_acc - 0.005 * len(fresh.records)  # within 0.5 pt of the best single, on new data
    assert cost < 0.9 * top_cost


def test_no_signal_falls_back_to_the_best_single_model() -> None:
    ds = dataset(_records(200, random.Random(3), signal=False))
    pol = fit_never_lose(ds, ds.records)
    assert pol.models == ["top"] and not pol.fit["cascade"] and "not enough evidence" in pol.fit["why"]


def test_no_cheaper_model_says_so() -> None:
    recs = _records(60, random.Random(4), signal=True)
    for r in recs:  # the cheap model becomes the best: nothing is cheaper than it
        r["responses"]["cheap"]["samples"][0].update(answer="A", correct=True, text="A")
    ds = dataset(recs)
    pol = fit_never_lose(ds, ds.records)
    assert pol.models == ["cheap"] and "no model is cheaper" in pol.fit["why"]
