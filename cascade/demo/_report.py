"""The demo's report: plain text, so it reads the same in a terminal, a CI log and the README."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._ladder import Rung
from ._run import TaskRun


def _usd(x: float) -> str:
    return f"${x:.6f}"


def prices_line(rungs: Sequence[Rung], sources: dict[str, str]) -> str:
    parts = [
        f"{r.name} ${r.price_in:g}/${r.price_out:g}" + (f" ({sources[r.name]})" if r.name in sources else "")
        for r in rungs
    ]
    return "notional prices, USD per 1M tokens in/out: " + "; ".join(parts)


def rung_table(run: TaskRun) -> list[str]:
    lines = [
        f"  {'rung':8} {'reached':>7} {'accepted':>8} {'right/acc':>9}  {'cost':>10} {'time':>7}  escalated because",
    ]
    for row in run.rung_stats():
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].most_common()) or "-"
        right = f"{row['accepted_correct']}/{row['accepted']}"
        lines.append(
            f"  {row['rung']:8} {row['reached']:>7} {row['accepted']:>8} {right:>9}  "
            f"{_usd(row['cost_usd']):>10} {row['latency_s']:>6.1f}s  {reasons}"
        )
    return lines


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "0/0"


def idle_rungs(run: TaskRun) -> list[dict[str, Any]]:
    """Rungs below the top that were tried and accepted nothing: pure overhead on this workload."""
    return [row for row in run.rung_stats()[:-1] if row["reached"] and not row["accepted"]]


def without_idle(run: TaskRun, idle: list[dict[str, Any]] | None = None) -> tuple[float, float]:
    """Cost and wall time of the same answers had the idle rungs not been on the ladder. Exact for the
    cost (an escalation does not change what the next rung is sent); the time is the measured wall
    time minus the idle rungs' measured latency. ``idle``: the rows of :func:`idle_rungs`, when known."""
    idle = idle_rungs(run) if idle is None else idle
    return run.cost_usd - sum(r["cost_usd"] for r in idle), run.wall_s - sum(r["latency_s"] for r in idle)


def task_report(cascade: TaskRun, baseline: TaskRun | None) -> list[str]:
    n = len(cascade.outcomes)
    lines = [f"== {cascade.task}: {n} items, ladder {' -> '.join(r.name for r in cascade.rungs)}"]
    lines += rung_table(cascade)
    unanswered = sum(not o.result.accepted for o in cascade.outcomes)
    if unanswered:
        lines.append(f"  {unanswered} item(s) not accepted by any rung: the top rung's answer was used")
    idle_rows = idle_rungs(cascade)
    idle = [row["rung"] for row in idle_rows]
    top = cascade.rungs[-1].name
    b = baseline
    cols = ["cascade"] + ([f"without {'+'.join(idle)}"] if idle else []) + [f"{top} alone"]
    cost_wo, wall_wo = without_idle(cascade, idle_rows)
    costs = [cascade.cost_usd] + ([cost_wo] if idle else []) + [b.cost_usd if b else None]
    walls = [cascade.wall_s] + ([wall_wo] if idle else []) + [b.wall_s if b else None]
    right = [cascade.correct] + ([cascade.correct] if idle else []) + [b.correct if b else None]
    if idle:
        lines.append(
            f"  note: rung {', '.join(idle)} accepted nothing here: its calls are pure cost. The middle column"
            " is the same answers without it (cost exact, time = measured minus its latency)"
        )
    lines.append(f"  {'':16}" + "".join(f"{c:>18}" for c in cols))
    lines.append(f"  {'accuracy':16}" + "".join(f"{_pct(r, n) if r is not None else '-':>18}" for r in right))
    lines.append(f"  {'notional cost':16}" + "".join(f"{_usd(c) if c is not None else '-':>18}" for c in costs))
    if b and b.cost_usd:
        shares = [cascade.cost_usd, cost_wo] if idle else [cascade.cost_usd]
        lines.append(f"  {'vs ' + top + ' alone':16}" + "".join(f"{100 * c / b.cost_usd:>17.0f}%" for c in shares))
    lines.append(f"  {'wall time':16}" + "".join(f"{w:>17.1f}s" if w is not None else f"{'-':>18}" for w in walls))
    return lines


def full_report(
    runs: Sequence[tuple[TaskRun, TaskRun | None]], sources: dict[str, str], log_path: str | None, threads: int = 2
) -> str:
    lines = [f"cascade demo: real models on the offline ladder (llama.cpp, {threads} thread(s), temperature 0)"]
    if runs:
        lines.append(prices_line(runs[0][0].rungs, sources))
    for cascade, baseline in runs:
        lines.append("")
        lines += task_report(cascade, baseline)
    if len(runs) > 1:
        n = sum(len(c.outcomes) for c, _ in runs)
        right = sum(c.correct for c, _ in runs)
        cost = sum(c.cost_usd for c, _ in runs)
        wall = sum(c.wall_s for c, _ in runs)
        lines += ["", f"== all tasks: cascade {_pct(right, n)} right, {_usd(cost)}, {wall:.1f} s"]
        idle_rows = [idle_rungs(c) for c, _ in runs]
        idle = any(idle_rows)
        without = [without_idle(c, rows) for (c, _), rows in zip(runs, idle_rows, strict=True)]
        cost_wo = sum(w[0] for w in without)
        if idle:
            wall_wo = sum(w[1] for w in without)
            lines.append(f"   without the rungs that accepted nothing: {_usd(cost_wo)}, about {wall_wo:.1f} s")
        if all(b is not None for _, b in runs):
            b_right = sum(b.correct for _, b in runs if b)
            b_cost = sum(b.cost_usd for _, b in runs if b)
            b_wall = sum(b.wall_s for _, b in runs if b)
            lines.append(f"   top rung alone {_pct(b_right, n)} right, {_usd(b_cost)}, {b_wall:.1f} s")
            if b_cost:
                share = f"the cascade costs {100 * cost / b_cost:.0f}% of the top rung alone"
                if idle:
                    share += f"; without the rungs that accepted nothing, {100 * cost_wo / b_cost:.0f}%"
                lines.append(f"   {share} ({right - b_right:+d} right answers against it)")
    if log_path:
        lines += ["", f"escalation log (JSONL, one event per attempt and per request): {log_path}"]
    return "\n".join(lines)
