"""Diagnostics for the cost analysis: how far the recorded signals can go, and what other
threshold schemes give. NOT a way to fit: the "ceiling" rows pick thresholds on the test split
itself, to show the best any train-fitted threshold could reach with these signals.

For every candidate ladder (1 to max_rungs-1 cheaper rungs + the top; calibration fitted on train as in
``fit_policy``) it reports on test:
* ceiling, shared threshold: the cheapest (ladder, threshold) with accuracy >= best single - 0.5 pt;
* ceiling, per-rung thresholds (3-rung ladders, every second of the 100 thresholds per rung);
* per-rung thresholds fitted on train (cheapest with train disagreement with the top <= eps) and
  their test result, to compare with one shared threshold;
* for self-consistency data, MoT's recipe: accept the cheap rung's vote when the raw share of its
  first k samples (CoT and PoT interleaved) that agree is >= a threshold, on train and on test.
Usage: python benchmarks/replay_headroom.py [--eps 0.03] [--max-rungs 3] [dataset ...]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from cascade.replay import load_dataset
from cascade.replay._data import Dataset, load_catalog
from cascade.replay._fit import THRESHOLDS, Family, Table, build_family, sweep
from cascade.replay._policy import Policy, RungPolicy

VALIDATOR = {"mmlu": "confidence", "medmcqa": "confidence", "mot_date": "consistency"}
GRID = THRESHOLDS[::2]
TOL = 0.5


def calibrated(train: Table, test: Table, models: list[str], ks: list[int]) -> tuple[Family, Family]:
    """The family calibrated on train, and the same rungs on test with the train calibration."""
    ftr = build_family(train, models, ks, train.column(models[-1]), "agreement")
    fte = build_family(test, models, ks, test.column(models[-1]), "agreement")
    fte.rungs = ftr.rungs
    fte.probs = [
        np.where(c.ok, 1 / (1 + np.exp(-np.clip(r.w[0] + c.feats @ np.array(r.w[1:]), -30, 30))), 0.0)
        for r, c in zip(ftr.rungs[:-1], fte.cols[:-1], strict=True)
    ]
    return ftr, fte


def two_thresholds(f: Family, t1: float, t2: float) -> tuple[float, float, float]:
    """(disagreement with the top, accuracy, cost per query) of a 3-rung family at thresholds t1, t2."""
    a1 = f.probs[0] >= t1
    a2 = ~a1 & (f.probs[1] >= t2)
    a3 = ~a1 & ~a2
    top = f.cols[2]
    codes = np.where(a1, f.cols[0].code, np.where(a2, f.cols[1].code, top.code))
    dis = float((~a3 & ((codes < 0) | (codes != top.code))).mean())
    acc = float(np.where(a1, f.cols[0].correct, np.where(a2, f.cols[1].correct, top.correct)).mean())
    cost = float((f.cols[0].cost + ~a1 * f.cols[1].cost + a3 * top.cost).mean())
    return dis, acc, cost


def main_one(ds: Dataset, top: str, eps: float, max_rungs: int) -> None:
    val = VALIDATOR.get(ds.name, "agreement")
    ladder = [m for m in ds.model_names if m != top and ds.model(m).price_in <= ds.model(top).price_in] + [top]
    train, test = Table(ds, ds.split("train"), val), Table(ds, ds.split("test"), val)
    tt = test.column(top)
    ta, tc = float(tt.correct.mean()), float(tt.cost.mean())
    ks_opts = (2, 4, 6, 10, 20, 40) if val == "consistency" else (1,)
    shared: tuple[float, str] = (9.0, "-")
    per_rung: tuple[float, str] = (9.0, "-")
    fitted: tuple[float, str] = (9e9, "-")
    for size in range(1, max_rungs):
        for sub in itertools.combinations(ladder[:-1], size):
            for kk in itertools.product(*[ks_opts] * size):
                models, ks = [*sub, top], [*kk, 1]
                ftr, fte = calibrated(train, test, models, ks)
                _, cost, correct = fte.run(THRESHOLDS)
                gap, ratio = 100 * (correct.mean(0) - ta), cost.mean(0) / tc
                for i in np.flatnonzero(gap >= -TOL):
                    if ratio[i] < shared[0]:
                        shared = (
                            float(ratio[i]),
                            f"{' > '.join(models)} k={ks} thr {THRESHOLDS[i]:.3f} gap {gap[i]:+.2f}",
                        )
                if size != 2 or val == "consistency":
                    continue
                trc = float(ftr.cols[2].cost.mean())
                for t1, t2 in itertools.product(GRID, GRID):
                    _, acc, c = two_thresholds(fte, t1, t2)
                    g = 100 * (acc - ta)
                    if g >= -TOL and c / tc < per_rung[0]:
                        per_rung = (c / tc, f"{' > '.join(models)} thr ({t1}, {t2}) gap {g:+.2f}")
                    dtr, _, ctr = two_thresholds(ftr, t1, t2)
                    if dtr <= eps and ctr / trc < fitted[0]:
                        fitted = (
                            ctr / trc,
                            f"{' > '.join(models)} thr ({t1}, {t2}): test gap {g:+.2f} cost {c / tc:.3f}",
                        )
    print(f"## {ds.name} (top {top}: test accuracy {ta:.4f}, ${tc:.3g}/query)")
    print(f"- ceiling, shared threshold (chosen on test): cost {shared[0]:.3f} with {shared[1]}")
    if val != "consistency":
        print(f"- ceiling, per-rung thresholds, 3 rungs (chosen on test): cost {per_rung[0]:.3f} with {per_rung[1]}")
        print(f"- per-rung thresholds fitted on train (disagreement <= {eps:g}): {fitted[1]}")
    if val == "consistency":
        cheap = ladder[0]
        mi, mo = ds.model(cheap), ds.model(top)
        for k, thr in itertools.product((10, 20), (0.6, 0.7, 0.8)):
            pol = Policy(
                ds.name,
                val,
                [
                    RungPolicy(cheap, k, [0, 1], mi.price_in, mi.price_out, identity=True),
                    RungPolicy(top, 1, [0, 1], mo.price_in, mo.price_out, identity=True),
                ],
                thr,
            )
            row = []
            for split in ("train", "test"):
                recs = ds.split(split)
                ((_, acc, cost),) = sweep(ds, pol, recs, np.array([thr]))
                topp = Policy(ds.name, val, pol.rungs[1:], thr)
                ((_, tacc, tcost),) = sweep(ds, topp, recs, np.array([thr]))
                row.append(f"{split} gap {100 * (acc - tacc):+.2f} cost {cost / tcost:.3f}")
            print(f"- MoT raw vote, k={k}, share >= {thr}: {'; '.join(row)}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=["mmlu", "medmcqa", "mot_date", "routerbench_arc_challenge"])
    ap.add_argument("--eps", type=float, default=0.03, help="train disagreement allowed for the per-rung fit")
    ap.add_argument("--max-rungs", type=int, default=3, help="largest ladder searched (the per-rung grid: 3 only)")
    args = ap.parse_args()
    catalog = load_catalog()["datasets"]
    for name in args.datasets:
        main_one(load_dataset(name), catalog[name]["oracle"]["test"]["best_single_model"], args.eps, args.max_rungs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
