"""The demo's report: plain text, so it reads the same in a terminal, a CI log and the README."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import CascadeError
from .._ladder import Rung
from ._run import TaskRun, Tuning

GOAL = "within one item of the top rung alone, at <= 60% of its notional cost, in less wall time"


class DeadRung(CascadeError, RuntimeError):
    """A rung answered none of its calls: the ladder is broken (a server, not a model, failed)."""


def refuse_dead_rungs(run: TaskRun) -> None:
    """Raise :class:`DeadRung` naming the rung when every call it got failed (a demo of a dead ladder
    must not print a report of wrong answers at $0)."""
    for rung in run.rungs:
        called = [a for o in run.outcomes for a in o.result.attempts if a.rung == rung.name and a.outcome != "skipped"]
        if called and all(a.outcome == "error" for a in called):
            reasons: dict[str, int] = {}
            for a in called:
                for r in a.reasons or ["error"]:
                    reasons[r] = reasons.get(r, 0) + 1
            why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
            raise DeadRung(
                f"rung {rung.name!r} answered none of its {len(called)} calls on {run.task} ({why}): the "
                "ladder is broken, not the model; see its server log (printed at start)"
            )


def split_note(split: str, policies: str | None, tuning: Tuning, tasks: list[str]) -> str:
    """Which items the figures are on, and what decided each task's escalations."""
    parts = []
    for t in tasks:
        policy = tuning.policies.get(t)
        if policy is None:
            hand = ", ".join(f"{r} {tuning.threshold(t, r)}" for r in tuning.rungs[:-1])
            parts.append(f"{t}: hand-set thresholds {hand} (None: rung left out)")
            continue
        n = policy.fit.get("n")
        parts.append(
            f"{t}: policy {' > '.join(policy.models)}, threshold {policy.threshold:.3f} on calibrated "
            f"{policy.validator} ({policies or 'demo/data'}/policy-{t}.json, fitted by `cascade tune --method "
            f"{policy.method} --target {policy.target}` on {n} calibration items; no guarantee at that size)"
        )
    if split == "report":
        where = "on the report split (items 1, 3, 5, ...), which the policies were not fitted on"
    elif split == "calibration":
        where = "on the calibration split: IN SAMPLE, the policies were fitted on these items"
    else:
        where = "on all items: half of them IN SAMPLE (the policies were fitted on items 0, 2, 4, ...)"
    return f"figures {where}; " + "; ".join(parts)


def _usd(x: float) -> str:
    return f"${x:.6f}"


def prices_line(rungs: Sequence[Rung], sources: dict[str, str]) -> str:
    parts = [
        f"{r.name} ${r.price_in:g}/${r.price_out:g}" + (f" ({sources[r.name]})" if r.name in sources else "")
        for r in rungs
    ]
    return "notional prices, USD per 1M tokens in/out: " + "; ".join(parts)


def repriced(run: TaskRun, prices: dict[str, tuple[float, float]]) -> float:
    """What the run's calls would cost at other prices (USD per 1M tokens in/out): cost is linear in
    the tokens each attempt used, so this is exact."""
    total = 0.0
    for o in run.outcomes:
        for a in o.result.attempts:
            p_in, p_out = prices.get(a.rung, (0.0, 0.0))
            total += (a.tokens_in * p_in + a.tokens_out * p_out) / 1e6
    return total


def _cpu(run: TaskRun, rung: str) -> str:
    return f"{run.cpu_s[rung]:.1f}s" if rung in run.cpu_s else "-"


def rung_table(run: TaskRun) -> list[str]:
    lines = [
        f"  {'rung':8} {'reached':>7} {'accepted':>8} {'right/acc':>9}  {'cost':>10} {'cpu':>7}  escalated because",
    ]
    for row in run.rung_stats():
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].most_common()) or "-"
        right = f"{row['accepted_correct']}/{row['accepted']}"
        lines.append(
            f"  {row['rung']:8} {row['reached']:>7} {row['accepted']:>8} {right:>9}  "
            f"{_usd(row['cost_usd']):>10} {_cpu(run, row['rung']):>7}  {reasons}"
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
    if unaccepted := unaccepted_line(cascade):
        lines.append(unaccepted)
    idle_rows = idle_rungs(cascade)
    idle = [row["rung"] for row in idle_rows]
    top = cascade.rungs[-1].name
    b = baseline
    cols = ["cascade"] + ([f"without {'+'.join(idle)}"] if idle else []) + [f"{top} alone"]
    cost_wo, wall_wo = without_idle(cascade, idle_rows)
    costs = [cascade.cost_usd] + ([cost_wo] if idle else []) + [b.cost_usd if b else None]
    # with requests in flight, latencies overlap: the time without the idle rung cannot be subtracted out
    walls = (
        [cascade.wall_s] + ([wall_wo if cascade.concurrency == 1 else None] if idle else []) + [b.wall_s if b else None]
    )
    right = [cascade.correct] + ([cascade.correct] if idle else []) + [b.correct if b else None]
    if b is cascade:
        lines.append(f"  note: the ladder is {top} alone: one run, shown in both columns")
    if idle:
        lines.append(
            f"  note: rung {', '.join(idle)} accepted nothing here: its calls are pure cost. The middle column"
            " is the same answers without it (cost exact; time, one request at a time: measured minus its latency)"
        )
    w = column_width(cols)
    lines.append(f"  {'':16}" + "".join(f"{c:>{w}}" for c in cols))
    lines.append(f"  {'accuracy':16}" + "".join(f"{_pct(r, n) if r is not None else '-':>{w}}" for r in right))
    lines.append(f"  {'notional cost':16}" + "".join(f"{_usd(c) if c is not None else '-':>{w}}" for c in costs))
    if b and b.cost_usd:
        shares = [cascade.cost_usd, cost_wo] if idle else [cascade.cost_usd]
        lines.append(f"  {'vs ' + top + ' alone':16}" + "".join(f"{100 * c / b.cost_usd:>{w - 1}.0f}%" for c in shares))
    lines.append(
        f"  {'wall time':16}" + "".join(f"{t:>{w - 1}.1f}s" if t is not None else f"{'-':>{w}}" for t in walls)
    )
    cpus = [sum(cascade.cpu_s.values())] + ([None] if idle else []) + [sum(b.cpu_s.values()) if b else None]
    if cascade.cpu_s:
        lines.append(
            f"  {'server CPU':16}" + "".join(f"{c:>{w - 1}.1f}s" if c is not None else f"{'-':>{w}}" for c in cpus)
        )
    return lines


def column_width(labels: list[str]) -> int:
    """Wide enough for every label with two spaces before it (18 at least), so headers never touch."""
    return max(18, *(len(label) + 2 for label in labels))


def unaccepted_line(run: TaskRun) -> str | None:
    """How many items no rung accepted, and whose best-effort answer stood for them (if any did)."""
    missed = [o.result for o in run.outcomes if not o.result.accepted]
    if not missed:
        return None
    used: dict[str, int] = {}
    for r in missed:
        if r.output is not None and r.answered_by is not None:
            used[r.answered_by] = used.get(r.answered_by, 0) + 1
    parts = [f"the best-effort answer of {rung} was used for {k}" for rung, k in used.items()]
    if none := len(missed) - sum(used.values()):
        parts.append(f"no rung gave an answer for {none}")
    return f"  {len(missed)} item(s) not accepted by any rung: " + "; ".join(parts)


def goal_line(right: int, cost: float, wall: float, b_right: int, b_cost: float, b_wall: float) -> str:
    """The demo's goal, met or missed, and by how much on each count."""
    parts = [
        f"accuracy {right - b_right:+d} items ({'met' if right >= b_right - 1 else 'missed'}: >= -1)",
        f"cost {100 * cost / b_cost:.0f}% ({'met' if cost <= 0.6 * b_cost else 'missed'}: <= 60%)" if b_cost else "",
        f"wall time {wall:.1f} s vs {b_wall:.1f} s ({'met' if wall < b_wall else 'missed'})",
    ]
    return "   goal (" + GOAL + "): " + "; ".join(p for p in parts if p)


def full_report(
    runs: Sequence[tuple[TaskRun, TaskRun | None]],
    sources: dict[str, str],
    log_path: str | None,
    threads: int = 2,
    note: str = "",
    vendor_prices: dict[str, tuple[float, float]] | None = None,
    vendor_source: str = "",
) -> str:
    concurrency = runs[0][0].concurrency if runs else 1
    lines = [
        f"cascade demo: real models on the offline ladder (llama.cpp, {threads} thread(s) per server, temperature 0,"
        f" {concurrency} request(s) in flight for the cascade and for the top rung alone)"
    ]
    if runs:
        lines.append(prices_line(max((c.rungs for c, _ in runs), key=len), sources))
        lines.append("server CPU: user+system seconds of each rung's llama.cpp server during the run")
    if note:
        lines.append(note)
    for cascade, baseline in runs:
        lines.append("")
        lines += task_report(cascade, baseline)
    if runs:
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
            about = f", about {wall_wo:.1f} s" if all(c.concurrency == 1 for c, _ in runs) else ""
            lines.append(f"   without the rungs that accepted nothing: {_usd(cost_wo)}{about}")
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
                lines.append(goal_line(right, cost, wall, b_right, b_cost, b_wall))
            if vendor_prices:
                v_cost = sum(repriced(c, vendor_prices) for c, _ in runs)
                v_b = sum(repriced(b, vendor_prices) for _, b in runs if b)
                if v_b:
                    lines.append(
                        f"   at {vendor_source} prices instead: the cascade costs {100 * v_cost / v_b:.0f}% of the "
                        f"top rung alone ({_usd(v_cost)} vs {_usd(v_b)})"
                    )
            cpu = sum(sum(c.cpu_s.values()) for c, _ in runs)
            b_cpu = sum(sum(b.cpu_s.values()) for _, b in runs if b)
            if b_cpu:
                lines.append(
                    f"   server CPU: cascade {cpu:.1f} s, top rung alone {b_cpu:.1f} s ({100 * cpu / b_cpu:.0f}%)"
                )
    if log_path:
        lines += ["", f"escalation log (JSONL, one event per attempt and per request): {log_path}"]
    return "\n".join(lines)
