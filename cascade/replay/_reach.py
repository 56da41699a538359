"""What a split lets a cascade reach, beside what the fit reached: the in-sample ceiling of the
signals (calibration and threshold chosen on the evaluated split itself: not reachable by any fit,
a yardstick), the share of its saving a fit captured, the top rung a fit ends on, and plain reasons a
dataset cannot reach a saving."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._data import Dataset, Record
from ._ladder_check import usable_signals
from ._metrics import SingleModel, best_single, single_models


def _singles(dataset: Dataset, records: Sequence[Record], models: Sequence[str] | None) -> list[SingleModel]:
    prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
    keep = set(models) if models is not None else set(dataset.model_names)
    return [s for s in single_models(records, prices) if s.model in keep]


Z_SAVE = 1.0
"""The one-standard-error rule: a cheaper model within one paired standard error of the best on the
fitting data cannot be told apart from it there, so the saving wins."""
Z_PRIOR = 1.645
"""A dearer model is kept unless the fitting data shows it worse (one-sided 5%, paired): price tracks
quality, so the data has to overturn it, not merely fail to confirm it."""
PRICE_WINDOW = 10.0
"""How far the price prior reaches: up to an order of magnitude dearer. Beyond it prices track age and
vendor more than quality (a legacy model at 20x may be no better), so such a model has to win on the data."""


@dataclass(frozen=True)
class TopChoice:
    """The model a ladder ends on (the best single model, chosen with uncertainty in mind)."""

    model: str
    accuracy: float
    cost_per_query: float
    train_best: str
    why: str


def paired_z(records: Sequence[Record], a: str, b: str) -> float:
    """How many paired standard errors ``a``'s accuracy is above ``b``'s on the same records."""
    diffs = [float(bool(r.responses[a].samples[0].correct)) - float(bool(r.responses[b].samples[0].correct))
             for r in records]  # fmt: skip
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(1, n - 1) / n)
    if se == 0.0:
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / se


def choose_top(
    dataset: Dataset,
    records: Sequence[Record],
    models: Sequence[str] | None = None,
    *,
    z_save: float = Z_SAVE,
    z_prior: float = Z_PRIOR,
    price_window: float = PRICE_WINDOW,
) -> TopChoice:
    """The best single model on ``records``, robust to a small or shifted sample (the plain best on a
    few hundred items is often not the best on new ones):

    1. ``b`` = the most accurate model on ``records`` (ties: the cheaper);
    2. one-standard-error rule: the cheapest model whose accuracy is within ``z_save`` paired standard
       errors of ``b``'s (``b`` itself if none is cheaper);
    3. price prior: the dearest model at most ``price_window`` times that one's cost whose accuracy
       is not ``z_prior`` paired standard errors below ``b``'s (the same one if none is dearer).
    """
    singles = {s.model: s for s in _singles(dataset, records, models)}
    best = best_single(list(singles.values()))
    cost = {m: s.cost_per_query for m, s in singles.items()}
    close = [m for m in singles if cost[m] < cost[best.model] and paired_z(records, best.model, m) <= z_save]
    pick = min(close, key=lambda m: (cost[m], -singles[m].accuracy)) if close else best.model
    why = "the most accurate on the fitting data"
    if pick != best.model:
        why = f"cheaper than {best.model!r} and within {z_save:g} paired standard error(s) of it"
    dearer = [m for m in singles if cost[pick] < cost[m] <= price_window * cost[pick]
              and (m == best.model or paired_z(records, best.model, m) <= z_prior)]  # fmt: skip
    if dearer:
        pick = max(dearer, key=lambda m: (cost[m], singles[m].accuracy))
        why = (
            f"the dearest within {price_window:g}x whose accuracy is not {z_prior:g} paired standard errors "
            f"below {best.model!r}'s (price tracks quality)"
        )
    if pick == best.model:
        why = "the most accurate on the fitting data"
    s = singles[pick]
    return TopChoice(s.model, s.accuracy, s.cost_per_query, best.model, why)


def ladder_below(
    dataset: Dataset, records: Sequence[Record], top: str, models: Sequence[str] | None = None
) -> list[str]:
    """Every model cheaper than ``top`` on ``records`` (cost order), then ``top``."""
    cost = {s.model: s.cost_per_query for s in _singles(dataset, records, models)}
    cheaper = sorted((m for m in cost if m != top and cost[m] < cost[top]), key=lambda m: cost[m])
    return [*cheaper, top]


MATCH_POINTS = 0.5
"""The goal's tolerance: at most 0.5 accuracy points below the best single model."""


@dataclass(frozen=True)
class Ceiling:
    """The cheapest configuration of the signals within ``MATCH_POINTS`` of the best single model, chosen
    on the evaluated records themselves (in-sample)."""

    ladder: list[str]
    validator: str
    accuracy: float
    cost_ratio: float
    gap_points: float

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "label": "in-sample ceiling: calibration and threshold chosen on the evaluated split"}


def ceiling(
    dataset: Dataset, records: Sequence[Record], validator: str | None = None, *, max_rungs: int = 3
) -> Ceiling | None:
    """The in-sample ceiling on ``records`` (None when no cheaper model or no usable signal)."""
    from ._fit import fit_policy

    prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
    best = best_single(single_models(records, prices))
    ladder = ladder_below(dataset, records, best.model)
    usable = usable_signals(dataset, ladder)
    kind = validator if validator in usable else next((k for k in ("consistency", "confidence", "schema",
                                                                   "agreement") if k in usable), None)  # fmt: skip
    if len(ladder) < 2 or kind is None:
        return None
    pol = fit_policy(
        dataset,
        ladder,
        kind,
        records=records,
        target="match",
        epsilon=MATCH_POINTS / 100,
        method="empirical",
        max_rungs=max_rungs,
    )
    acc = cost = 0.0
    for r in records:
        _, o, c = pol.decide(r)
        acc, cost = acc + o.correct, cost + c
    n = len(records)
    return Ceiling(pol.models, kind, acc / n, cost / n / best.cost_per_query, 100 * (acc / n - best.accuracy))


def share_captured(fit_ratio: float, fit_gap_points: float, ceiling_ratio: float | None) -> float | None:
    """The share of the ceiling's saving the fit kept (None when the fit loses more than the goal's
    tolerance, or the ceiling saves nothing)."""
    if ceiling_ratio is None or ceiling_ratio >= 1.0 or fit_gap_points < -MATCH_POINTS:
        return None
    return max(0.0, (1.0 - fit_ratio) / (1.0 - ceiling_ratio))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    ranked = sorted((s, i) for i, s in enumerate([*pos, *neg]))
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = sum(ranks[: len(pos)])
    return (r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


WEAK_AUROC = 0.6


def saving_notes(
    dataset: Dataset, records: Sequence[Record], models: Sequence[str] | None = None, validator: str | None = None
) -> list[str]:
    """Plain reasons a dataset cannot reach a (large) saving: no model cheaper than the best single;
    every cheaper model worse and at >= 50% of its cost; two rungs only, with a weak signal."""
    from ._policy import answer_key, rung_outcome

    choice = choose_top(dataset, records, models)
    top, top_acc, top_cost = choice.model, choice.accuracy, choice.cost_per_query
    ladder = ladder_below(dataset, records, top, models)
    prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
    singles = {s.model: s for s in single_models(records, prices)}
    if len(ladder) == 1:
        return [f"no model is cheaper than the best single model {top!r}: a cascade can only add cost"]
    notes = []
    cheap = ladder[:-1]
    if all(singles[m].cost_per_query >= 0.5 * top_cost and singles[m].accuracy < top_acc for m in cheap):
        notes.append(
            f"every cheaper model is less accurate than {top!r} and costs at least half as much: "
            "no cascade can cost under 0.5x it"
        )
    kind = validator or next((k for k in ("consistency", "confidence", "agreement") if k in usable_signals(
        dataset, ladder)), None)  # fmt: skip
    if len(cheap) == 1 and kind in ("confidence", "consistency"):
        m = cheap[0]
        outs = [rung_outcome(kind, r, m, k=8 if kind == "consistency" else 1, prices=prices[m]) for r in records]
        tops = [answer_key(r.responses[top].samples[0].answer) for r in records]
        pairs = [(o.raw, o.key == t and t is not None) for o, t in zip(outs, tops, strict=True) if o.raw is not None]
        area = auroc([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
        if area is None or area < WEAK_AUROC:
            shown = "none" if area is None else f"{area:.2f}"
            notes.append(
                f"two rungs only, and {m!r}'s {kind} barely tells when it agrees with {top!r} "
                f"(AUROC {shown} < {WEAK_AUROC}): little saving is reachable"
            )
    return notes
