"""Run a workload through a cascade (or the top rung alone) and account for what happened."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._config import RequestParams, SkipIdle
from .._engine import Cascade
from .._ladder import Ladder, Rung
from .._result import CascadeResult
from ..local import LocalLadder
from ..validators import Confidence, JsonSchema, Validator, check
from ._grounding import grounded
from ._tasks import LABELS, Task

Progress = Callable[[int, "ItemOutcome"], None]


@dataclass(frozen=True)
class Tuning:
    """The knobs of the demo ladder. Confidence thresholds are per task; rungs are cheapest first."""

    rungs: tuple[str, ...] = ("small", "medium", "large")
    ticket_threshold: float = 0.7
    invoice_threshold: float | None = None  # None: invoices are gated by schema + grounding only
    small_schema: bool = False
    skip_idle: int | None = 10  # skip a rung after this many visits with nothing accepted; None: never


@dataclass(slots=True)
class ItemOutcome:
    id: str
    gold: Any
    parsed: Any
    correct: bool
    result: CascadeResult


@dataclass(slots=True)
class TaskRun:
    """One workload through one ladder: every item's outcome, the wall time, the rung prices."""

    task: str
    mode: str
    rungs: list[Rung]
    outcomes: list[ItemOutcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def correct(self) -> int:
        return sum(o.correct for o in self.outcomes)

    @property
    def cost_usd(self) -> float:
        return sum(o.result.cost_usd for o in self.outcomes)

    def rung_stats(self) -> list[dict[str, Any]]:
        """Per rung: attempts that reached it, accepted there (and how many right), escalation reasons."""
        rows = []
        for rung in self.rungs:
            attempts = [a for o in self.outcomes for a in o.result.attempts if a.rung == rung.name]
            accepted = [o for o in self.outcomes if o.result.answered_by == rung.name and o.result.accepted]
            reasons: Counter[str] = Counter()
            for a in attempts:
                if a.outcome != "accepted":
                    reasons.update(a.reasons or [a.outcome])
            rows.append(
                {
                    "rung": rung.name,
                    "reached": sum(  # called: a rung skipped as idle was not
                        any(a.rung == rung.name and a.outcome != "skipped" for a in o.result.attempts)
                        for o in self.outcomes
                    ),
                    "attempts": len(attempts),
                    "accepted": len(accepted),
                    "accepted_correct": sum(o.correct for o in accepted),
                    "reasons": reasons,
                    "cost_usd": sum(a.cost_usd for a in attempts),
                    "latency_s": sum(a.latency_ms for a in attempts) / 1000,
                }
            )
        return rows


def validators_for(task: Task, tuning: Tuning, top: bool) -> list[Validator]:
    """Schema always; below the top rung also the confidence check for tickets, and for invoices the
    grounding check (plus a confidence check when ``tuning.invoice_threshold`` is set)."""
    if task.parse_model is not None:
        schema = JsonSchema(task.parse_model)
        if top:
            return [schema]
        checks = [schema, check(grounded(), name="grounded")]
        if tuning.invoice_threshold is not None:
            checks.append(Confidence(tuning.invoice_threshold, aggregate="min"))
        return checks
    schema = JsonSchema(task.schema)
    if top:
        return [schema]
    return [schema, Confidence(tuning.ticket_threshold, label_field="label", labels=LABELS)]


def params_for(task: Task, rung: str, tuning: Tuning) -> RequestParams:
    """Temperature 0, JSON constrained by the task's schema. Logprobs are asked for only by the rungs
    whose checks read them (``Confidence.request_params``): llama-cpp-python sorts the whole
    vocabulary in Python for every generated token when they are on, about 0.5 s a token here.

    The 135M model under schema-constrained decoding reports full confidence whether right or wrong,
    so by default it gets plain JSON mode (``small_schema=False``) and the schema is checked after.
    """
    constrained = rung != "small" or tuning.small_schema
    fmt = task.response_format() if constrained else {"type": "json_object"}
    return RequestParams(temperature=0, max_tokens=task.max_tokens, response_format=fmt)


def build_ladder(local: LocalLadder, task: Task, tuning: Tuning, *, top_only: bool = False) -> Ladder:
    names = tuning.rungs[-1:] if top_only else tuning.rungs
    rungs = [
        local.rung(
            name,
            params=params_for(task, name, tuning),
            validators=validators_for(task, tuning, top=(name == names[-1])),
        )
        for name in names
    ]
    return Ladder(rungs)


async def run_task(
    task: Task,
    items: Sequence[dict[str, Any]],
    ladder: Ladder,
    *,
    mode: str,
    log: Any = None,
    progress: Progress | None = None,
    skip_idle: int | None = None,
) -> TaskRun:
    """Send every item through ``ladder`` one at a time (each local server answers one request at once)."""
    run = TaskRun(task.name, mode, list(ladder.rungs))
    idle = SkipIdle(after=skip_idle, probe_every=skip_idle) if skip_idle else None
    cascade = Cascade(ladder, on_exhausted="best_effort", log=log, log_content="full", skip_idle=idle)
    t0 = time.perf_counter()
    try:
        for i, item in enumerate(items):
            result = await cascade.run(
                task.messages(item["text"]), metadata={"task": task.name, "item": item["id"], "mode": mode}
            )
            parsed = result.parsed
            outcome = ItemOutcome(item["id"], item["gold"], parsed, task.score(parsed, item["gold"]), result)
            run.outcomes.append(outcome)
            if progress is not None:
                progress(i, outcome)
    finally:
        run.wall_s = time.perf_counter() - t0
        await cascade.aclose()
    return run
