"""Tune the demo ladder honestly: run every rung on every item once, then replay cascades offline.

    .venv/bin/python benchmarks/demo_tuning.py [--tasks tickets,invoices] [--limit N]

Temperature 0 is deterministic on llama.cpp, so a cascade's answers and costs are exactly those of
its rungs' individual answers: walking the recorded answers with a threshold gives what the cascade
would do, for every threshold, from one pass per rung. Prints, per rung, accuracy, the confidence of
right and wrong answers, and the simulated cascades for a grid of thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from cascade import Cascade, Ladder
from cascade.demo._run import Tuning, params_for, validators_for
from cascade.demo._tasks import INVOICE_TASK, TICKET_TASK, Task, load_items
from cascade.local import LocalLadder


@dataclass
class Answer:
    valid: bool  # every check but confidence passed
    confidence: float | None
    correct: bool
    cost: float
    seconds: float


async def record(local: LocalLadder, task: Task, items: list[dict[str, Any]], rung: str) -> list[Answer]:
    """Each item on one rung alone, with the lower rungs' checks at threshold 0 (nothing is refused
    for low confidence; the confidence is recorded)."""
    zero = Tuning()
    only = local.rung(rung, params=params_for(task, rung, zero), validators=validators_for(task, None, top=False))
    cascade = Cascade(Ladder([only]), on_exhausted="best_effort")
    out: list[Answer] = []
    for item in items:
        t0 = time.perf_counter()
        result = await cascade.run(task.messages(item["text"]))
        verdicts = result.attempts[0].verdicts
        leaves = [leaf for v in verdicts for leaf in v.leaves()]
        conf = next((v.score for v in leaves if v.validator == "confidence"), None)
        others = [v for v in leaves if v.validator != "confidence"]
        out.append(
            Answer(
                valid=bool(others) and all(v.passed for v in others),
                confidence=conf,
                correct=task.score(result.parsed, item["gold"]),
                cost=result.cost_usd,
                seconds=time.perf_counter() - t0,
            )
        )
    await cascade.aclose()
    return out


def simulate(runs: list[list[Answer]], thresholds: list[float]) -> tuple[int, float, float]:
    right = 0
    cost = seconds = 0.0
    for i in range(len(runs[0])):
        for level, answers in enumerate(runs):
            a = answers[i]
            cost += a.cost
            seconds += a.seconds
            top = level == len(runs) - 1
            if top or (a.valid and a.confidence is not None and a.confidence >= thresholds[level]):
                right += a.correct
                break
    return right, cost, seconds


def describe(name: str, answers: list[Answer]) -> str:
    right = [a.confidence for a in answers if a.correct and a.confidence is not None]
    wrong = [a.confidence for a in answers if not a.correct and a.confidence is not None]

    def span(xs: list[float]) -> str:
        return f"{min(xs):.2f}..{max(xs):.2f} (median {sorted(xs)[len(xs) // 2]:.2f})" if xs else "-"

    return (
        f"  {name:7} right {sum(a.correct for a in answers):>2}/{len(answers)}"
        f"  valid {sum(a.valid for a in answers):>2}"
        f"  conf right {span(right)}  conf wrong {span(wrong)}  cost ${sum(a.cost for a in answers):.6f}"
        f"  {sum(a.seconds for a in answers):.1f}s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="tickets,invoices")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    tasks = [{"tickets": TICKET_TASK, "invoices": INVOICE_TASK}[t] for t in args.tasks.split(",")]
    grid = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01]
    async with LocalLadder() as local:
        for task in tasks:
            items = load_items(task)[: args.limit]
            runs = {r: await record(local, task, items, r) for r in ("small", "medium", "large")}
            print(f"== {task.name} ({len(items)} items)")
            for name, answers in runs.items():
                print(describe(name, answers))
            top_right, top_cost, top_s = simulate([runs["large"]], [])
            print(f"  large alone: {top_right} right, ${top_cost:.6f}, {top_s:.1f}s")
            for ladder in (("medium", "large"), ("small", "medium", "large"), ("small", "large")):
                for t in grid:
                    for t_small in grid if ladder[0] == "small" and len(ladder) == 3 else [t]:
                        thresholds = [t_small, t] if len(ladder) == 3 else [t]
                        right, cost, secs = simulate([runs[r] for r in ladder], thresholds)
                        print(f"  {'>'.join(ladder):20} t={thresholds}  right {right}  ${cost:.6f}"
                              f" ({100 * cost / top_cost:.0f}% of large)  {secs:.1f}s")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
