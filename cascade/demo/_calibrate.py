"""Honest thresholds: the demo's confidence thresholds are fitted on one half of its items (the
calibration split) and its figures are reported on the other half, never on the items they were
tuned on.

``cascade demo --calibrate`` runs every rung alone on the calibration split (each rung below the top
with its confidence recorded), then picks, per task, the thresholds that make the cascade cheapest
while it is as accurate as the top rung alone on that split; they are written to
``demo/data/thresholds.json``, which ``cascade demo`` reads. A rung no threshold makes pay (it lowers
accuracy whenever it accepts anything) gets ``None``: it is best left off the ladder.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ._run import TaskRun

Split = Literal["report", "calibration", "all"]
SPLITS: tuple[Split, ...] = ("report", "calibration", "all")
THRESHOLDS_FILE = "thresholds.json"


def split_items(items: Sequence[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
    """The calibration split is every other item from the first (0, 2, 4...), the report split the rest."""
    if split == "all":
        return list(items)
    return list(items[0::2] if split == "calibration" else items[1::2])


def thresholds_path() -> Path:
    return Path(str(resources.files("cascade.demo").joinpath("data").joinpath(THRESHOLDS_FILE)))


def load_thresholds(path: Path | None = None) -> dict[str, Any]:
    """The fitted thresholds: ``{"tasks": {task: {rung: threshold or None}}, "fitted_on": ...}``."""
    data: dict[str, Any] = json.loads((path or thresholds_path()).read_text())
    return data


@dataclass(frozen=True, slots=True)
class Observed:
    """One item on one rung run alone: did its hard checks pass, how sure was it, was it right, cost."""

    passed_checks: bool
    confidence: float
    correct: bool
    cost_usd: float


def observe(run: TaskRun) -> list[Observed]:
    """Per item of a single-rung run whose rung had a confidence check (threshold 0, so it recorded a
    score): the hard checks' verdict, the score, the correctness and the cost."""
    out = []
    for o in run.outcomes:
        attempt = o.result.attempts[0]
        leaves = [leaf for v in attempt.verdicts for leaf in v.leaves()]
        scores = [leaf.score for leaf in leaves if leaf.validator == "confidence" and leaf.score is not None]
        hard = all(leaf.passed for leaf in leaves if leaf.validator != "confidence")
        out.append(Observed(hard and bool(scores), scores[0] if scores else 0.0, o.correct, attempt.cost_usd))
    return out


def simulate(
    cheap: Sequence[Sequence[Observed]], top: Sequence[Observed], thresholds: Sequence[float | None]
) -> tuple[int, float]:
    """Right answers and cost of the cascade cheap rungs -> top at these thresholds (None: rung left
    out). Exact: an escalation does not change what the next rung is sent."""
    right, cost = 0, 0.0
    for i, top_item in enumerate(top):
        for rung, t in zip(cheap, thresholds, strict=True):
            if t is None:
                continue
            item = rung[i]
            cost += item.cost_usd
            if item.passed_checks and item.confidence >= t:
                right += item.correct
                break
        else:
            right += top_item.correct
            cost += top_item.cost_usd
    return right, cost


def fit(cheap: Sequence[Sequence[Observed]], top: Sequence[Observed]) -> tuple[list[float | None], int, float]:
    """The cheapest thresholds whose cascade is at least as accurate as the top rung alone on these
    items (every rung's candidates: each observed confidence, or None = left out)."""
    top_right = sum(o.correct for o in top)
    options: list[list[float | None]] = [[*sorted({o.confidence for o in rung}), None] for rung in cheap]
    best: tuple[float, list[float | None], int] | None = None
    for combo in itertools.product(*options):
        right, cost = simulate(cheap, top, combo)
        if right >= top_right and (best is None or cost < best[0]):
            best = (cost, list(combo), right)
    assert best is not None  # all None is the top alone: always eligible
    return best[1], best[2], best[0]
