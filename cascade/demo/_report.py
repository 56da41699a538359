"""The demo's report: plain text, so it reads the same in a terminal, a CI log and the README."""

from __future__ import annotations

from collections.abc import Sequence

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


def task_report(cascade: TaskRun, baseline: TaskRun | None) -> list[str]:
    n = len(cascade.outcomes)
    lines = [f"== {cascade.task}: {n} items, ladder {' -> '.join(r.name for r in cascade.rungs)}"]
    lines += rung_table(cascade)
    unanswered = sum(not o.result.accepted for o in cascade.outcomes)
    if unanswered:
        lines.append(f"  {unanswered} item(s) not accepted by any rung: the top rung's answer was used")
    for row in cascade.rung_stats()[:-1]:
        if row["reached"] and not row["accepted"]:
            lines.append(
                f"  note: rung {row['rung']} accepted nothing; without it the same answers would cost "
                f"{_usd(cascade.cost_usd - row['cost_usd'])} and take about "
                f"{cascade.wall_s - row['latency_s']:.1f} s"
            )
    top = cascade.rungs[-1].name
    lines.append(f"  {'':16} {'cascade':>16} {top + ' alone':>16}")
    b = baseline
    lines.append(f"  {'accuracy':16} {_pct(cascade.correct, n):>16} {_pct(b.correct, n) if b else '-':>16}")
    saving = f"  (cascade costs {100 * cascade.cost_usd / b.cost_usd:.0f}% of {top} alone)" if b and b.cost_usd else ""
    lines.append(f"  {'notional cost':16} {_usd(cascade.cost_usd):>16} {_usd(b.cost_usd) if b else '-':>16}{saving}")
    lines.append(f"  {'wall time':16} {cascade.wall_s:>15.1f}s {f'{b.wall_s:.1f}s' if b else '-':>16}")
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
        if all(b is not None for _, b in runs):
            b_right = sum(b.correct for _, b in runs if b)
            b_cost = sum(b.cost_usd for _, b in runs if b)
            b_wall = sum(b.wall_s for _, b in runs if b)
            lines.append(f"   top rung alone {_pct(b_right, n)} right, {_usd(b_cost)}, {b_wall:.1f} s")
    if log_path:
        lines += ["", f"escalation log (JSONL, one event per attempt and per request): {log_path}"]
    return "\n".join(lines)
