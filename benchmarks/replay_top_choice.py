"""How sensitive the never-lose fit's choice of the top rung is to its three constants.

For each setting of the one-standard-error bar (``z_save``), the price prior's bar (``z_prior``) and its
window (``price_window``), the single model :func:`choose_top` picks is scored as the fit's fallback
would be: train only (picked on train, judged on test) and cross-fitted (picked on 4 of 5 folds of all
items, judged on the fifth, pooled, against the best single model over all items). Never-lose as in
``benchmarks/replay.py``: that model itself, or within 0.5 pt of it at <= 1.0x its cost. The cascade
on top of the choice is left out (``benchmarks/replay.py`` measures it), so this runs in about a minute.

Usage: python benchmarks/replay_top_choice.py
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence

from cascade.replay import Record, load_dataset
from cascade.replay._data import Dataset, default_data_dir, load_catalog
from cascade.replay._reach import choose_top
from cascade.replay._safe import folds_of

TOLERANCE = 0.005  # 0.5 pt


def _figures(records: Sequence[Record], models: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    n = len(records)
    acc = {m: sum(bool(r.responses[m].samples[0].correct) for r in records) / n for m in models}
    cost = {m: sum(r.responses[m].cost_usd for r in records) / n for m in models}
    return acc, cost


def _holds(picks: Sequence[tuple[str, Sequence[Record]]], everything: Sequence[Record], models: Sequence[str]) -> bool:
    """Never-lose of the pooled picks (each model judged on its own held-out records)."""
    acc, cost = _figures(everything, models)
    best = max(models, key=lambda m: (acc[m], -cost[m]))
    if all(m == best for m, _ in picks):
        return True
    n = len(everything)
    got = sum(sum(bool(r.responses[m].samples[0].correct) for r in held) for m, held in picks) / n
    spent = sum(sum(r.responses[m].cost_usd for r in held) for m, held in picks) / n
    return got >= acc[best] - TOLERANCE and spent <= cost[best] * (1 + 1e-9)


def _score(ds: Dataset, z_save: float, z_prior: float, window: float) -> tuple[bool, bool]:
    def top(records: Sequence[Record]) -> str:
        return choose_top(ds, records, z_save=z_save, z_prior=z_prior, price_window=window).model

    test = ds.split("test")
    train_only = _holds([(top(ds.split("train")), test)], test, ds.model_names)
    parts = folds_of(ds.records, 5, salt="outer:")
    picks = [(top([r for j, p in enumerate(parts) if j != i for r in p]), held) for i, held in enumerate(parts)]
    return train_only, _holds(picks, ds.records, ds.model_names)


def main() -> int:
    data = default_data_dir()
    datasets = [load_dataset(n, data) for n in load_catalog(data)["datasets"]]
    print("| z_save | z_prior | window | never-lose train only | cross-fitted | fails |")
    print("|---|---|---|---|---|---|")
    for z_save, z_prior, window in itertools.product((0.5, 1.0), (1.28, 1.645, 1.96, 2.33), (5.0, 10.0, 20.0)):
        scores = {ds.name: _score(ds, z_save, z_prior, window) for ds in datasets}
        fails = [f"{n} ({'train' if not t else ''}{'/' if not t and not c else ''}{'cross' if not c else ''})"
                 for n, (t, c) in scores.items() if not (t and c)]  # fmt: skip
        train = sum(t for t, _ in scores.values())
        cross = sum(c for _, c in scores.values())
        print(f"| {z_save:g} | {z_prior:g} | {window:g}x | {train}/{len(datasets)} | {cross}/{len(datasets)} | "
              f"{', '.join(fails) or '-'} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
