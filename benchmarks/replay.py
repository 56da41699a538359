"""Fit on train, replay test through the real Cascade, for every dataset in ../shared/data.

Prints a markdown table. The top rung is the comparator the goal names (the catalog's best single
model on test); the cheaper rungs kept, their calibration and the threshold are fitted on train only.
With ``--cv``, one more row per dataset: the fitting configuration (method, target, epsilon of
``CV_GRID``) chosen by 5-fold cross-validation on train (cheapest with held-out accuracy at most 0.5
points below the top rung's), refitted on all of train; no guarantee unless it is an ``ltt`` one.
Usage: python benchmarks/replay.py [--epsilon 0.05[,0.08,...]] [--delta 0.1] [--cv] [--json out.json] [dataset ...]
Data: $CASCADE_DATA_DIR or ../shared/data next to the checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cascade.replay import load_dataset
from cascade.replay._data import default_data_dir, load_catalog
from cascade.replay._fit import CVResult, FitConfig, cross_validate, fit_policy, select_by_cv
from cascade.replay._report import evaluate, summary_row

VALIDATOR = {
    "mmlu": "confidence",
    "medmcqa": "confidence",
    "mot_date": "consistency",
    "extractgpt_ae110k": "schema",
}  # the rest have no confidence or samples: agreement
CV_GRID = [
    *(FitConfig("ltt", "agreement", e) for e in (0.03, 0.05, 0.08)),
    *(FitConfig("ltt", "loss", e) for e in (0.02, 0.03, 0.05)),
    *(FitConfig("empirical", "agreement", e) for e in (0.01, 0.02, 0.03, 0.05, 0.08)),
    *(FitConfig("empirical", "match", e) for e in (0.0, 0.005)),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--epsilon", default="0.05", help="one value or a comma-separated list (one row each)")
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--max-rungs", type=int, default=3)
    ap.add_argument(
        "--target",
        default="agreement",
        choices=["agreement", "loss"],
        help="risk of the LTT rows: disagreement with the top rung, or wrong where the top is right",
    )
    ap.add_argument("--cv", action="store_true", help="add the row chosen by cross-validation on train")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data_dir = default_data_dir()
    catalog = load_catalog(data_dir)["datasets"]
    names = args.datasets or list(catalog)
    epsilons = [float(e) for e in args.epsilon.split(",")]
    head = (
        "dataset",
        "eps (LTT) or cv choice",
        "ladder (fitted on train)",
        "accuracy",
        "$/query",
        "best single (test)",
        "gap (pts)",
        "cost ratio",
        "goal",
        "APGR",
        "hull AUC",
        "oracle",
        "risk fit/bound/test",
        "s",
    )
    print(f"data: {data_dir}; target of the eps rows: {args.target} (LTT); delta={args.delta}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    reports = []
    cv_tables: list[tuple[str, list[CVResult]]] = []
    for name, eps in ((n, e) for n in names for e in [*epsilons, *(["cv"] if args.cv else [])]):
        t0 = time.perf_counter()
        ds = load_dataset(name, data_dir)
        top = catalog[name]["oracle"]["test"]["best_single_model"]
        ladder = [m for m in ds.model_names if m != top and ds.model(m).price_in <= ds.model(top).price_in] + [top]
        validator = VALIDATOR.get(name, "agreement")
        if eps == "cv":
            res = cross_validate(ds, ladder, validator, CV_GRID, delta=args.delta, max_rungs=args.max_rungs)
            chosen = select_by_cv(res)
            cv_tables.append((name, res))
            cfg = chosen.config
            label = f"cv: {cfg.label} (held-out gap {chosen.gap_points:+.2f}, cost {chosen.cost_ratio:.3f})"
        else:
            cfg, label = FitConfig("ltt", args.target, float(eps)), f"{float(eps):g}"
        pol = fit_policy(
            ds,
            ladder,
            validator,
            epsilon=cfg.epsilon,
            delta=args.delta,
            method=cfg.method,
            target=cfg.target,
            max_rungs=args.max_rungs,
        )
        rep = evaluate(ds, pol, "test")
        reports.append(rep)
        apgr = "-" if rep["apgr"] is None else f"{rep['apgr']:.3f}"
        o = rep["oracle"]
        row = list(summary_row(rep))
        row[1] = f"{' > '.join(m.split('/')[-1] for m in rep['ladder'])} (k={[r['k'] for r in rep['rungs']]})"
        print(
            "| "
            + " | ".join(
                [
                    row[0],
                    label,
                    *row[1:],
                    apgr,
                    f"{rep['hull_auc']:.4f}",
                    f"{o['accuracy']:.3f} @ {o['cost_per_query']:.3g}",
                    f"{pol.fit['risk']:.3f}/{pol.fit['risk_bound']:.3f}/{rep['risk_on_split']:.3f}",
                    f"{time.perf_counter() - t0:.0f}",
                ]
            )
            + " |",
            flush=True,
        )
        assert rep["engine_equals_simulation"], f"{name}: the Cascade run and the simulation disagree"
    for name, res in cv_tables:
        print(f"\n{name}: 5-fold CV on train, held-out gap (pts) / cost ratio per configuration")
        print("; ".join(f"{r.config.label} {r.gap_points:+.2f}/{r.cost_ratio:.3f}" for r in res))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(reports, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
