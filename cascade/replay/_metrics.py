"""Evaluation metrics over replayed outcomes: pure functions of accuracies and costs.

Operating points are ``(cost_per_query, accuracy)`` pairs. The cost-quality hull is the upper concave
frontier of the points (mixing two configurations at random reaches any point on the segment).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ._data import Record
from ._provider import sample_cost

Point = tuple[float, float]  # (cost per query, accuracy)


def accuracy(correct: Sequence[bool]) -> float:
    """Share of correct answers (0.0 for no queries)."""
    return sum(1 for c in correct if c) / len(correct) if correct else 0.0


def cost_per_query(costs: Sequence[float]) -> float:
    return sum(costs) / len(costs) if costs else 0.0


@dataclass(frozen=True)
class SingleModel:
    model: str
    accuracy: float
    cost_per_query: float


def single_models(records: Sequence[Record], prices: dict[str, tuple[float, float]]) -> list[SingleModel]:
    """Every model alone: accuracy of ``samples[0]`` and the cost of that one call (README 1.7)."""
    out = []
    for m in records[0].responses:
        pin, pout = prices[m]
        out.append(
            SingleModel(
                m,
                accuracy([bool(r.responses[m].samples[0].correct) for r in records]),
                cost_per_query([sample_cost(r.responses[m], [0], pin, pout) for r in records]),
            )
        )
    return out


def best_single(models: Sequence[SingleModel]) -> SingleModel:
    """The most accurate single model; ties go to the cheaper one."""
    return max(models, key=lambda s: (s.accuracy, -s.cost_per_query))


def oracle(records: Sequence[Record], prices: dict[str, tuple[float, float]], ladder: Sequence[str]) -> Point:
    """The catalog's oracle cascade: stop at the first model whose ``samples[0]`` is right, paying every
    model called; queries nobody gets right pay the whole ladder. Returns (cost, accuracy)."""
    costs: list[float] = []
    hits: list[bool] = []
    for r in records:
        spent, hit = 0.0, False
        for m in ladder:
            spent += sample_cost(r.responses[m], [0], *prices[m])
            if r.responses[m].samples[0].correct:
                hit = True
                break
        costs.append(spent)
        hits.append(hit)
    return cost_per_query(costs), accuracy(hits)


def upper_hull(points: Sequence[Point]) -> list[Point]:
    """The upper-left concave frontier, cost ascending (dominated and below-chord points removed)."""
    pts = sorted(set(points), key=lambda p: (p[0], -p[1]))
    frontier: list[Point] = []
    for p in pts:  # keep only points that improve accuracy as cost grows
        if not frontier or p[1] > frontier[-1][1]:
            frontier.append(p)
    hull: list[Point] = []
    for p in frontier:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def hull_value(hull: Sequence[Point], cost: float) -> float:
    """Accuracy of the hull at ``cost`` (linear between vertices, flat beyond the last, 0 before the first)."""
    if not hull or cost < hull[0][0]:
        return 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(hull):
        if x1 <= cost <= x2:
            return y1 if x2 == x1 else y1 + (y2 - y1) * (cost - x1) / (x2 - x1)
    return hull[-1][1]


def hull_auc(points: Sequence[Point], lo: float, hi: float) -> float:
    """Mean hull accuracy over the cost range [lo, hi] (the normalised area under the curve).
    Below the cheapest operating point there is none: accuracy 0 there (a step, not a ramp)."""
    if hi <= lo:
        raise ValueError(f"hull_auc: need lo < hi, got lo={lo!r}, hi={hi!r}")
    hull = upper_hull(points)
    if not hull:
        return 0.0
    xs = sorted({lo, hi, *(x for x, _ in hull if lo < x < hi)})
    area = 0.0
    for a, b in itertools.pairwise(xs):
        if b <= hull[0][0]:  # no operating point this cheap (the hull's first x is in xs when inside)
            continue
        area += (hull_value(hull, a) + hull_value(hull, b)) / 2 * (b - a)
    return area / (hi - lo)


def apgr(points: Sequence[Point], weak: Point, strong: Point) -> float:
    """Average performance gap recovered (RouteLLM): the mean over cost in [weak, strong] of
    (hull accuracy - weak accuracy) / (strong accuracy - weak accuracy). The weak and strong models
    are on the hull themselves, so mixing them at random scores 0.5."""
    if strong[1] == weak[1]:
        raise ValueError("apgr: the strong and weak models have the same accuracy; the gap is undefined")
    auc = hull_auc([*points, weak, strong], weak[0], strong[0])
    return (auc - weak[1]) / (strong[1] - weak[1])


def cost_at_accuracy(points: Sequence[Point], target: float) -> float | None:
    """The least cost of an operating point reaching ``target`` accuracy (None if none does)."""
    ok = [c for c, a in points if a >= target]
    return min(ok) if ok else None
