"""Fit on train, replay test through the real Cascade, for every dataset in ../shared/data.

Prints a markdown table. The top rung is the comparator the goal names (the catalog's best single
model on test); the cheaper rungs kept, their calibration and the threshold are fitted on train only.
Usage: python benchmarks/replay.py [--epsilon 0.05] [--delta 0.1] [--json out.json] [dataset ...]
Data: $CASCADE_DATA_DIR or ../shared/data next to the checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cascade.replay import load_dataset
from cascade.replay._data import default_data_dir, load_catalog
from cascade.replay._fit import fit_policy
from cascade.replay._report import evaluate, summary_row

VALIDATOR = {"mmlu": "confidence", "medmcqa": "confidence", "mot_date": "consistency",
             "extractgpt_ae110k": "schema"}  # the rest have no confidence or samples: agreement


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*")
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--max-rungs", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data_dir = default_data_dir()
    catalog = load_catalog(data_dir)["datasets"]
    names = args.datasets or list(catalog)
    head = ("dataset", "ladder (fitted on train)", "accuracy", "$/query", "best single (test)", "gap (pts)",
            "cost ratio", "goal", "APGR", "hull AUC", "oracle", "risk fit/bound/test", "s")
    print(f"data: {data_dir}; target agreement with the top rung, epsilon={args.epsilon}, delta={args.delta}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    reports = []
    for name in names:
        t0 = time.perf_counter()
        ds = load_dataset(name, data_dir)
        top = catalog[name]["oracle"]["test"]["best_single_model"]
        ladder = [m for m in ds.model_names if m != top and ds.model(m).price_in <= ds.model(top).price_in] + [top]
        pol = fit_policy(ds, ladder, VALIDATOR.get(name, "agreement"), epsilon=args.epsilon, delta=args.delta,
                         max_rungs=args.max_rungs)
        rep = evaluate(ds, pol, "test")
        reports.append(rep)
        apgr = "-" if rep["apgr"] is None else f"{rep['apgr']:.3f}"
        o = rep["oracle"]
        print("| " + " | ".join([*summary_row(rep), apgr, f"{rep['hull_auc']:.4f}",
                                 f"{o['accuracy']:.3f} @ {o['cost_per_query']:.3g}",
                                 f"{pol.fit['risk']:.3f}/{pol.fit['risk_bound']:.3f}/{rep['risk_on_split']:.3f}",
                                 f"{time.perf_counter() - t0:.0f}"]) + " |", flush=True)
        assert rep["engine_equals_simulation"], f"{name}: the Cascade run and the simulation disagree"
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(reports, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
