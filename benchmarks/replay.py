"""The never-lose fit on every recorded dataset: train only, and cross-fitted over every labelled item.

For each dataset in the data folder (every model of it is a candidate; the fit picks the top rung, the
rungs and the signal from the data, never from the dataset's name):
* best single model and oracle cascade (test split);
* the in-sample ceiling of the signals on test (calibration and threshold chosen on test itself: a
  yardstick, not reachable by a fit);
* the fitted policy (train only), replayed on test through the real Cascade (asserted equal to the
  fast simulation), with the share of the ceiling's saving it captured;
* the cross-fitted point: k-fold over every labelled item (train + test): fit on k-1 folds, replay
  the held-out fold, pooled, against the best single model over all items (the "calibrated on enough
  traffic" regime);
* never-lose on both: the fit is within 0.5 pt of the best single model at <= 1.0x its cost, or is
  that model itself; goal: within 0.5 pt at <= 0.5x.
With ``--curve``: the learning curve (25/50/100% of train, by hash of the id; then the cross-fitted
point) with never-lose at each point.

Usage: python benchmarks/replay.py [dataset ...] [--folds 5] [--curve] [--json out.json]
       [--z Z] [--epsilons 0.01,0.02,...] [--validator KIND]   (fit variants, for comparison)
Data: $CASCADE_DATA_DIR or ../shared/data next to the checkout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from cascade.replay import Policy, Record, load_dataset
from cascade.replay._data import Dataset, default_data_dir, load_catalog
from cascade.replay._metrics import best_single, oracle, single_models
from cascade.replay._reach import ceiling, share_captured
from cascade.replay._report import evaluate
from cascade.replay._safe import fit_never_lose, folds_of

TOLERANCE = 0.5  # points
FIT: dict[str, Any] = {}  # keyword arguments of fit_never_lose (the command line's fit variants)


def _score(policy: Policy, records: Sequence[Record]) -> tuple[float, float]:
    acc = cost = 0.0
    for r in records:
        _, o, c = policy.decide(r)
        acc, cost = acc + o.correct, cost + c
    return acc / len(records), cost / len(records)


def _prices(ds: Dataset) -> dict[str, tuple[float, float]]:
    return {m.model: (m.price_in, m.price_out) for m in ds.models}


def _verdict(gap: float, ratio: float, single: str | None, best: str) -> tuple[bool, bool]:
    """(never-lose, goal) of one point."""
    never = single == best or (gap >= -TOLERANCE and ratio <= 1.0 + 1e-9)
    return never, gap >= -TOLERANCE and ratio <= 0.5


def _ladder_label(policy: Policy) -> str:
    return " > ".join(m.split("/")[-1] for m in policy.models)


def train_only(ds: Dataset, train: Sequence[Record], test: Sequence[Record]) -> dict[str, Any]:
    pol = fit_never_lose(ds, train, **FIT)
    best = best_single(single_models(test, _prices(ds)))
    acc, cost = _score(pol, test)
    gap, ratio = 100 * (acc - best.accuracy), cost / best.cost_per_query
    single = pol.models[0] if len(pol.models) == 1 else None
    never, goal = _verdict(gap, ratio, single, best.model)
    return {"policy": pol, "gap": gap, "ratio": ratio, "never_lose": never, "goal": goal, "best": best.model}


def cross_fit(ds: Dataset, folds: int) -> dict[str, Any]:
    """k-fold over every labelled item: pooled held-out figures against the best single over all."""
    records = ds.records
    parts = folds_of(records, folds, salt="outer:")
    best = best_single(single_models(records, _prices(ds)))
    acc = cost = 0.0
    ladders = []
    for i, held in enumerate(parts):
        fit_on = [r for j, p in enumerate(parts) if j != i for r in p]
        pol = fit_never_lose(ds, fit_on, **FIT)
        ladders.append(_ladder_label(pol))
        a, c = _score(pol, held)
        acc, cost = acc + a * len(held), cost + c * len(held)
    n = len(records)
    gap, ratio = 100 * (acc / n - best.accuracy), cost / n / best.cost_per_query
    never, goal = _verdict(gap, ratio, None, best.model)
    return {"gap": gap, "ratio": ratio, "never_lose": never, "goal": goal, "ladders": ladders, "best": best.model}


def _fraction(records: Sequence[Record], share: float) -> list[Record]:
    ranked = sorted(records, key=lambda r: hashlib.sha256(f"curve:{r.id}".encode()).hexdigest())
    return ranked[: max(10, round(share * len(ranked)))]


def _yn(flag: bool) -> str:
    return "yes" if flag else "**no**"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--folds", type=int, default=5, help="outer folds of the cross-fitted point")
    ap.add_argument("--curve", action="store_true", help="also the learning curve: 25/50/100%% of train")
    ap.add_argument("--json", default=None)
    ap.add_argument("--z", type=float, default=None, help="fit variant: standard errors of the held-out check")
    ap.add_argument("--epsilons", default=None, help="fit variant: the epsilon grid, comma-separated")
    ap.add_argument("--validator", default=None, help="fit variant: the signal (default: read from the data)")
    args = ap.parse_args()
    if args.z is not None:
        FIT["z"] = args.z
    if args.epsilons:
        FIT["epsilons"] = [float(e) for e in args.epsilons.split(",")]
    if args.validator:
        FIT["validator"] = args.validator
    data_dir = default_data_dir()
    names = args.datasets or list(load_catalog(data_dir)["datasets"])
    print(
        f"data: {data_dir}; never-lose fit (loss target, inner 5-fold CV over epsilon) {FIT or 'defaults'}; "
        f"tolerance {TOLERANCE} pt\n"
    )
    head = (
        "dataset",
        "best single (test)",
        "oracle (test)",
        "ceiling (test, in-sample)",
        "fitted on train: ladder",
        "gap / cost",
        "never-lose",
        "share of ceiling",
        f"cross-fitted ({args.folds}-fold, all items): gap / cost",
        "never-lose",
        "goal",
        "s",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rows: list[dict[str, Any]] = []
    curves: list[tuple[str, list[str]]] = []
    for name in names:
        t0 = time.perf_counter()
        ds = load_dataset(name, data_dir)
        train, test = ds.split("train"), ds.split("test")
        row: dict[str, Any] = {"dataset": name}
        cells = [name]
        if test and train:
            prices = _prices(ds)
            best = best_single(single_models(test, prices))
            oc, oa = oracle(test, prices, ds.model_names)
            ceil = ceiling(ds, test)
            fit = train_only(ds, train, test)
            rep = evaluate(ds, fit["policy"], "test")
            assert rep["engine_equals_simulation"], f"{name}: the Cascade run and the simulation disagree"
            share = share_captured(fit["ratio"], fit["gap"], None if ceil is None else ceil.cost_ratio)
            row.update(
                best={"model": best.model, "accuracy": best.accuracy, "cost_per_query": best.cost_per_query},
                oracle={"accuracy": oa, "cost_per_query": oc},
                ceiling=None if ceil is None else ceil.as_dict(),
                fitted={k: v for k, v in fit.items() if k != "policy"} | {"ladder": fit["policy"].models,
                                                                          "why": fit["policy"].fit.get("why")},
                share_of_ceiling=share,
            )  # fmt: skip
            cells += [
                f"{best.model.split('/')[-1]} {best.accuracy:.3f} @ {best.cost_per_query:.3g}",
                f"{oa:.3f} @ {oc / best.cost_per_query:.2f}x",
                "-" if ceil is None else f"{ceil.gap_points:+.2f} / {ceil.cost_ratio:.3f}",
                _ladder_label(fit["policy"]),
                f"{fit['gap']:+.2f} / {fit['ratio']:.3f}",
                _yn(fit["never_lose"]),
                "-" if share is None else f"{share:.0%}",
            ]
        else:
            cells += ["-"] * 7
        cf = cross_fit(ds, args.folds)
        row["cross_fitted"] = cf
        cells += [f"{cf['gap']:+.2f} / {cf['ratio']:.3f}", _yn(cf["never_lose"]), _yn(cf["goal"])]
        cells.append(f"{time.perf_counter() - t0:.0f}")
        print("| " + " | ".join(cells) + " |", flush=True)
        if args.curve and train and test:
            points = []
            for share_ in (0.25, 0.5, 1.0):
                part = _fraction(train, share_)
                p = train_only(ds, part, test)
                points.append(
                    f"{share_:.0%} of train (n={len(part)}): {p['gap']:+.2f} / {p['ratio']:.3f} "
                    f"({_ladder_label(p['policy'])}; never-lose {_yn(p['never_lose'])})"
                )
            points.append(
                f"cross-fitted (n={len(ds.records)}): {cf['gap']:+.2f} / {cf['ratio']:.3f} "
                f"(never-lose {_yn(cf['never_lose'])})"
            )
            curves.append((name, points))
            row["curve"] = points
        rows.append(row)
    for name, points in curves:
        print(f"\n{name} learning curve (gap pts / cost ratio on test): " + "; ".join(points))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
