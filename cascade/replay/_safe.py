"""The never-lose fit: a cascade only where it has earned it, else the best single model.

Small calibration sets are the binding constraint (a few hundred items: the test gap's standard error
is 0.5-2.4 points), so the fit is built to lose nothing when it cannot show an advantage:

1. **The top rung is the best single model, chosen with its uncertainty in mind**
   (:func:`choose_top`): on a few hundred items the most accurate model is often not the best on new
   ones (a lucky near-tie), so (a) a cheaper model within one paired standard error of the most
   accurate wins the tie (the one-standard-error rule: the data cannot tell them apart, the saving is
   sure); then (b) the dearest model at most 10x that one's cost that the data does not show worse
   (one-sided 5%, paired) is kept: price tracks quality, so the data must overturn it, within an order
   of magnitude (beyond it, a legacy price says little). The ladder ends there; every model at least
   as dear is dropped. What no rule on the fitting data can see is a fitting sample drawn from another
   distribution than the traffic (MMLU's dev set against its validation set).
2. The candidate ladders are the models cheaper than that top (subsets of up to ``max_rungs - 1``).
3. For each ``epsilon`` of a grid, Learn-Then-Test certifies the ``loss`` target (the top rung is
   right and the cascade wrong, at most ``epsilon`` with probability ``1 - delta``; ``delta`` is
   split over the grid). The loss target needs only the top rung's answers and gold on a sample.
4. **Inner k-fold cross-validation** on the fitting data estimates each epsilon's held-out accuracy
   gap against the top rung alone (with its paired standard error) and its cost ratio. The cheapest
   epsilon whose held-out gap, ``z`` standard errors below the estimate, is at least
   ``-tolerance_points`` and whose cost ratio is at most ``max_cost_ratio`` is refitted on all the
   fitting data; if none is, the policy is the top rung alone (the best single model).

What is guaranteed: the loss bound of step 3 (a certificate). What is estimated: the accuracy gap of
step 4 (held out, not certified: certifying a 0.5 point net loss for a cascade that disagrees with
the top 5% of the time needs on the order of 8,000 labelled items). ``reachable`` says plainly when
a dataset cannot give a saving at all.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from ._data import Dataset, Record
from ._fit import fit_policy
from ._ladder_check import usable_signals
from ._policy import Policy, RungPolicy
from ._reach import choose_top, ladder_below, saving_notes

EPSILONS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05)


@dataclass(frozen=True)
class Held:
    """Pooled held-out figures of one configuration against the top rung on the same records."""

    epsilon: float
    gap_points: float
    cost_ratio: float
    se_points: float = 0.0  # standard error of the paired per-item gap

    def lower(self, z: float) -> float:
        """The gap's lower confidence limit, ``z`` standard errors below the estimate."""
        return self.gap_points - z * self.se_points


def folds_of(records: Sequence[Record], k: int, salt: str = "") -> list[list[Record]]:
    """``k`` folds by hash of the id (deterministic, independent of the record order)."""
    ranked = sorted(records, key=lambda r: hashlib.sha256(f"{salt}{r.id}".encode()).hexdigest())
    return [ranked[i::k] for i in range(k)]


def reachable(
    dataset: Dataset, records: Sequence[Record], validator: str | None = None, models: Sequence[str] | None = None
) -> str | None:
    """Why no cascade can save on this data (None when one may): no model cheaper than the best
    single; or no signal the cheaper rungs carry on this ladder."""
    top = choose_top(dataset, records, models).model
    ladder = ladder_below(dataset, records, top, models)
    if len(ladder) == 1:
        return f"no model is cheaper than the best single model {top!r}: a cascade can only add cost"
    usable = usable_signals(dataset, ladder)
    if (validator is not None and validator not in usable) or not usable:
        what = f"signal {validator!r}" if validator else "signal"
        return f"no {what} works on the ladder {ladder} (usable: {usable or 'none'})"
    return None


def _single(dataset: Dataset, top: str, validator: str, why: str, info: dict[str, Any]) -> Policy:
    m = dataset.model(top)
    pol = Policy(dataset.name, validator, [RungPolicy(top, 1, [0.0, 1.0], m.price_in, m.price_out)], 1.0)
    pol.method = "never-lose"
    pol.target = "loss"
    # the best single model alone loses nothing against itself: certified at any epsilon
    pol.fit = {**info, "cascade": False, "why": why, "risk": 0.0, "risk_bound": 0.0, "certified_ok": True,
               "cost_per_query": info["top_cost_per_query"], "accuracy": info["top_accuracy"]}  # fmt: skip
    return pol


def held_out(
    dataset: Dataset,
    ladder: Sequence[str],
    validator: str,
    records: Sequence[Record],
    epsilons: Sequence[float],
    *,
    delta: float,
    folds: int,
    max_rungs: int,
) -> list[Held]:
    """Inner cross-validation: each epsilon fitted on k-1 folds, replayed on the held-out one, pooled."""
    parts = folds_of(records, folds, salt="inner:")
    out = []
    for eps in epsilons:
        cost = top_cost = 0.0
        diffs: list[float] = []
        for i, held in enumerate(parts):
            fit_on = [r for j, p in enumerate(parts) if j != i for r in p]
            pol = fit_policy(
                dataset, ladder, validator, records=fit_on, target="loss", epsilon=eps, delta=delta, max_rungs=max_rungs
            )
            t = pol.rungs[-1]
            for r in held:
                _, o, c = pol.decide(r)
                one = Policy(dataset.name, validator, [t], 1.0).decide(r)
                diffs.append(float(o.correct) - float(one[1].correct))
                cost, top_cost = cost + c, top_cost + one[2]
        n = len(diffs)
        mean = sum(diffs) / n
        se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(1, n - 1) / n)
        out.append(Held(eps, 100 * mean, cost / top_cost if top_cost else 1.0, 100 * se))
    return out


def fit_never_lose(
    dataset: Dataset,
    records: Sequence[Record],
    *,
    models: Sequence[str] | None = None,
    validator: str | None = None,
    epsilons: Sequence[float] = EPSILONS,
    delta: float = 0.1,
    max_rungs: int = 3,
    folds: int = 5,
    tolerance_points: float = 0.5,
    z: float = 1.0,
    max_cost_ratio: float = 0.9,
) -> Policy:
    """The cheapest certified cascade whose held-out gap holds, else the best single (module doc)."""
    recs = list(records)
    if len(recs) < 2 * folds:
        raise ConfigError(f"records: the never-lose fit needs at least {2 * folds} labelled records, got {len(recs)}")
    if not epsilons or any(not 0 < e < 1 for e in epsilons):
        raise ConfigError(f"epsilons: expected values in (0, 1), got {list(epsilons)!r}")
    choice = choose_top(dataset, recs, models)
    top, top_acc, top_cost = choice.model, choice.accuracy, choice.cost_per_query
    ladder = ladder_below(dataset, recs, top, models)
    usable = usable_signals(dataset, ladder)
    kind = validator or next((k for k in ("consistency", "confidence", "schema", "agreement") if k in usable), None)
    info: dict[str, Any] = {
        "n": len(recs),
        "top": top,
        "top_why": choice.why,
        "train_best": choice.train_best,
        "top_accuracy": top_acc,
        "top_cost_per_query": top_cost,
        "candidates": ladder,
        "epsilons": list(epsilons),
        "delta": delta,
        "folds": folds,
        "tolerance_points": tolerance_points,
        "z": z,
        "max_cost_ratio": max_cost_ratio,
    }
    info["notes"] = saving_notes(dataset, recs, models, kind)
    why = reachable(dataset, recs, kind, models)
    if why is not None or kind is None:
        return _single(dataset, top, kind or "confidence", why or "no usable signal", info)
    level = delta / len(epsilons)
    held = held_out(dataset, ladder, kind, recs, epsilons, delta=level, folds=folds, max_rungs=max_rungs)
    info["held_out"] = [vars(h) for h in held]
    ok = [h for h in held if h.lower(z) >= -tolerance_points and h.cost_ratio <= max_cost_ratio]
    if not ok:
        best = min(held, key=lambda h: h.cost_ratio)
        why = (
            f"no epsilon of {list(epsilons)} held out within -{tolerance_points} pt of {top!r} ({z:g} standard "
            f"error(s) below the estimate) at <= {max_cost_ratio}x its cost (cheapest: {best.gap_points:+.2f} "
            f"+- {best.se_points:.2f} pt at {best.cost_ratio:.2f}x): "
            "not enough evidence for a cascade; more calibration data (the shadow audit) may give it"
        )
        return _single(dataset, top, kind, why, info)
    chosen = min(ok, key=lambda h: (h.cost_ratio, -h.gap_points))
    pol = fit_policy(
        dataset, ladder, kind, records=recs, target="loss", epsilon=chosen.epsilon, delta=level, max_rungs=max_rungs
    )
    if len(pol.rungs) == 1 or not pol.fit.get("certified_ok") or pol.fit["cost_per_query"] >= top_cost:
        return _single(dataset, top, kind, "the refit on every fitting record certified nothing cheaper", info)
    pol.method = "never-lose"
    pol.delta = delta
    pol.fit.update(info, cascade=True, chosen_epsilon=chosen.epsilon, why="held-out gap and cost within bounds")
    return pol
