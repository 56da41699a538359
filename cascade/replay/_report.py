"""The evaluation report: the fitted cascade replayed through a real ``Cascade`` on one split,
compared with every single model, the oracle and its own cost-accuracy sweep."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError
from ._data import Dataset
from ._fit import sweep
from ._metrics import (
    accuracy,
    apgr,
    best_single,
    cost_at_accuracy,
    cost_per_query,
    hull_auc,
    oracle,
    single_models,
)
from ._policy import Policy, answer_key
from ._run import run_policy_sync

MATCH_TOLERANCE = 0.005
"""The goal's "matched accuracy": at most 0.5 points below the best single model."""


def evaluate(dataset: Dataset, policy: Policy, split: str = "test") -> dict[str, Any]:
    """Replay ``split`` through the policy's cascade and compute every figure of the report."""
    records = dataset.split(split)
    if not records:
        raise ConfigError(f"split: {dataset.name!r} has no {split!r} records to evaluate")
    prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
    outs = run_policy_sync(dataset, policy, records)
    sim = [policy.decide(r) for r in records]
    same = all(
        o.rung == s[0] and o.correct == s[1].correct and abs(o.cost_usd - s[2]) < 1e-12
        for o, s in zip(outs, sim, strict=False)
    )
    top = policy.rungs[-1].model
    if policy.target == "loss":
        risk = sum(
            1
            for r, (_, o, _) in zip(records, sim, strict=True)
            if r.responses[top].samples[0].correct and not o.correct
        ) / len(records)
    else:
        risk = sum(
            1
            for r, (j, o, _) in zip(records, sim, strict=True)
            if j < len(policy.rungs) - 1 and (o.key is None or o.key != answer_key(r.responses[top].samples[0].answer))
        ) / len(records)
    acc = accuracy([o.correct for o in outs])
    cpq = cost_per_query([o.cost_usd for o in outs])
    n = len(outs)
    rungs = []
    for j, rung in enumerate(policy.rungs):
        reached = sum(1 for o in outs if o.rung >= j)
        answered = sum(1 for o in outs if o.rung == j)
        rungs.append(
            {
                "model": rung.model,
                "k": rung.k,
                "reached": reached,
                "answered": answered,
                "escalation_rate": (reached - answered) / reached if reached else 0.0,
            }
        )
    singles = single_models(records, prices)
    best = best_single(singles)
    oc, oa = oracle(records, prices, dataset.model_names)
    points = [(c, a) for _, a, c in sweep(dataset, policy, records)]
    by_model = {s.model: s for s in singles}
    weak, strong = by_model[policy.rungs[0].model], by_model[policy.rungs[-1].model]
    matched = cost_at_accuracy(points, best.accuracy - MATCH_TOLERANCE)
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "split": split,
        "n": n,
        "validator": policy.validator,
        "ladder": policy.models,
        "threshold": policy.threshold,
        "accuracy": acc,
        "cost_per_query": cpq,
        "rungs": rungs,
        "single_models": [vars(s) for s in singles],
        "best_single": vars(best),
        "cost_ratio_vs_best": cpq / best.cost_per_query,
        "accuracy_gap_vs_best_points": 100 * (acc - best.accuracy),
        "goal_met": acc >= best.accuracy - MATCH_TOLERANCE and cpq <= 0.5 * best.cost_per_query,
        "oracle": {"accuracy": oa, "cost_per_query": oc},
        "cost_ratio_at_matched_accuracy": None if matched is None else matched / best.cost_per_query,
        "apgr": apgr(points, (weak.cost_per_query, weak.accuracy), (strong.cost_per_query, strong.accuracy))
        if len(policy.rungs) > 1 and weak.accuracy != strong.accuracy and weak.cost_per_query < strong.cost_per_query
        else None,
        "hull_auc": hull_auc(points, min(s.cost_per_query for s in singles), max(s.cost_per_query for s in singles)),
        "sweep": [{"cost_per_query": c, "accuracy": a} for c, a in points],
        "engine_equals_simulation": same,
        "risk_on_split": risk if policy.target in ("agreement", "loss") else 1 - acc,
        "risk_bound_from_fit": policy.fit.get("risk_bound"),
        "policy": policy.to_json(),
    }
    report.update(_reach(dataset, records, policy, report))
    return report


def _reach(dataset: Dataset, records: list[Any], policy: Policy, report: dict[str, Any]) -> dict[str, Any]:
    """The in-sample ceiling of the signals on this split, and the share of its saving the fit captured."""
    try:
        from ._reach import ceiling, share_captured
    except ImportError:  # pragma: no cover - numpy/scipy missing: the figures need the [eval] extra
        return {"ceiling": None, "share_of_ceiling_saving": None}
    ceil = ceiling(dataset, records, policy.validator)
    ratio = None if ceil is None else ceil.cost_ratio
    return {
        "ceiling": None if ceil is None else ceil.as_dict(),
        "share_of_ceiling_saving": share_captured(
            report["cost_ratio_vs_best"], report["accuracy_gap_vs_best_points"], ratio
        ),
    }


def plot(report: dict[str, Any], path: str) -> None:
    """Cost-accuracy frontier: single models, the threshold sweep, the chosen point, the oracle."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("--plot needs matplotlib: pip install 'cascade-router[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sw = sorted(report["sweep"], key=lambda p: p["cost_per_query"])
    ax.plot(
        [p["cost_per_query"] for p in sw],
        [p["accuracy"] for p in sw],
        "-",
        color="tab:blue",
        alpha=0.6,
        label=f"cascade {' > '.join(report['ladder'])} (threshold sweep)",
    )
    for s in report["single_models"]:
        ax.scatter(s["cost_per_query"], s["accuracy"], color="gray", s=18)
        ax.annotate(s["model"].split("/")[-1], (s["cost_per_query"], s["accuracy"]), fontsize=7)
    ax.scatter(report["cost_per_query"], report["accuracy"], color="tab:red", s=60, zorder=5, label="fitted cascade")
    ax.scatter(
        report["oracle"]["cost_per_query"],
        report["oracle"]["accuracy"],
        marker="*",
        s=90,
        color="tab:green",
        label="oracle",
    )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_usd_label))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, pos: _usd_label(x, pos) if _lead_digit(x) in (2, 5) else ""))
    ax.set_xlabel("USD per query (log)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['dataset']} ({report['split']}, n={report['n']})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:  # a missing folder, or an extension matplotlib cannot write
        raise ConfigError(f"--plot: cannot write {str(path)!r}: {exc}") from None
    finally:
        plt.close(fig)


def _lead_digit(x: float) -> int:
    return round(x / 10 ** math.floor(math.log10(x))) if x > 0 else 0


def _usd_label(x: float, _pos: object = None) -> str:
    """Tick labels in plain dollars (a log axis over one decade otherwise shows a single label)."""
    return f"${x:.2g}" if x > 0 else ""


def summary_row(report: dict[str, Any]) -> Sequence[str]:
    b = report["best_single"]
    return (
        report["dataset"],
        " > ".join(report["ladder"]),
        f"{report['accuracy']:.4f}",
        f"{report['cost_per_query']:.3g}",
        f"{b['model']} {b['accuracy']:.4f} @ {b['cost_per_query']:.3g}",
        f"{report['accuracy_gap_vs_best_points']:+.2f}",
        f"{report['cost_ratio_vs_best']:.3f}",
        "yes" if report["goal_met"] else "no",
    )
