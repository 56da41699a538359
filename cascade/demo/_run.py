"""Run a workload through a cascade (or the top rung alone) and account for what happened."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._config import RequestParams, SkipIdle
from .._engine import Cascade
from .._ladder import Ladder, Rung
from .._result import CascadeResult
from ..local import LocalLadder
from ..replay._policy import Policy
from ..validators import Confidence, JsonSchema, Validator, check
from ..validators._policy import policy_ladder
from ._grounding import grounded
from ._tasks import LABELS, Task

Progress = Callable[[int, "ItemOutcome"], None]


DEFAULT_THRESHOLDS = {"tickets": 0.7, "invoices": 0.0}
"""For a rung the thresholds file does not name. 0.0: no confidence check (the hard checks gate it)."""


@dataclass(frozen=True)
class Tuning:
    """The knobs of the demo ladder; rungs are cheapest first. ``policies[task]``: the policy
    ``cascade tune`` fitted for the task (its rungs, rule and threshold), run live. Without one, the
    hand-set ``thresholds[task][rung]``: the confidence a rung below the top needs to be accepted on
    that task (0.0: its hard checks alone gate it; None: it is left off the ladder for that task)."""

    rungs: tuple[str, ...] = ("small", "medium", "large")
    thresholds: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    small_schema: bool = False
    skip_idle: int | None = 10  # skip a rung after this many visits with nothing accepted; None: never
    policies: Mapping[str, Policy] = field(default_factory=dict)

    def threshold(self, task: str, rung: str) -> float | None:
        per_task = self.thresholds.get(task, {})
        return per_task[rung] if rung in per_task else DEFAULT_THRESHOLDS.get(task, 0.7)

    def ladder_for(self, task: str) -> tuple[str, ...]:
        """The rungs used on ``task``: the policy's, else those below the top with a threshold, then the top."""
        if task in self.policies:
            return tuple(self.policies[task].models)
        return tuple(r for r in self.rungs[:-1] if self.threshold(task, r) is not None) + self.rungs[-1:]


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
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds each rung's server used during the run (measured from the process, Linux only)."""
    concurrency: int = 1

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


def hard_checks(task: Task, top: bool) -> list[Validator]:
    """What must hold whatever the confidence: the schema; below the top, for invoices, that every
    value is found in the message (a small model's invented invoice number is sure of itself)."""
    schema = JsonSchema(task.parse_model) if task.parse_model is not None else JsonSchema(task.schema)
    if top or task.parse_model is None:
        return [schema]
    return [schema, check(grounded(), name="grounded")]


def validators_for(task: Task, threshold: float | None, top: bool) -> list[Validator]:
    """Schema always; below the top also, for tickets, the confidence of the label, and for invoices the
    grounding check plus the confidence over the values' tokens when the threshold is above 0 (or is
    None: calibrating, the score is recorded and anything passes)."""
    checks = hard_checks(task, top)
    if top:
        return checks
    if task.parse_model is not None:
        if threshold is None or threshold > 0:
            checks.append(Confidence(threshold or 0.0, aggregate="min"))
    else:
        checks.append(Confidence(threshold or 0.0, label_field="label", labels=LABELS))
    return checks


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


def build_ladder(
    local: LocalLadder, task: Task, tuning: Tuning, *, top_only: bool = False, names: Sequence[str] | None = None
) -> Ladder:
    """The task's ladder on the running servers (``names``: these rungs instead of the tuned ones):
    the task's fitted policy when it has one (``policy_ladder``, as ``Cascade.from_policy`` runs it),
    with the hard checks before the policy's rule."""
    policy = tuning.policies.get(task.name)
    if policy is not None and names is None and not top_only:
        top = policy.models[-1]
        return policy_ladder(
            policy,
            {name: local.rung(name).provider for name in policy.models},
            params={name: params_for(task, name, tuning).model_dump(exclude_defaults=True) for name in policy.models},
            checks={name: hard_checks(task, top=name == top) for name in policy.models},
        )
    names = tuple(names) if names is not None else tuning.rungs[-1:] if top_only else tuning.ladder_for(task.name)
    rungs = [
        local.rung(
            name,
            params=params_for(task, name, tuning),
            validators=validators_for(task, tuning.threshold(task.name, name), top=(name == names[-1])),
        )
        for name in names
    ]
    return Ladder(rungs)


def calibration_ladder(local: LocalLadder, task: Task, tuning: Tuning, name: str) -> Ladder:
    """One rung alone, as it sits in the cascade, but with its confidence recorded and not gating."""
    top = name == tuning.rungs[-1]
    validators = validators_for(task, None, top=top)
    return Ladder([local.rung(name, params=params_for(task, name, tuning), validators=validators)])


async def run_task(
    task: Task,
    items: Sequence[dict[str, Any]],
    ladder: Ladder,
    *,
    mode: str,
    log: Any = None,
    progress: Progress | None = None,
    skip_idle: int | None = None,
    concurrency: int = 1,
    local: LocalLadder | None = None,
) -> TaskRun:
    """Send every item through ``ladder``, ``concurrency`` at a time (each request walks its own way up
    the ladder, so the rungs' servers work at once). With ``local``, the servers are watched (one that
    dies raises :class:`~cascade.local.LocalServerError`) and their CPU time is measured."""
    run = TaskRun(task.name, mode, list(ladder.rungs), concurrency=concurrency)
    idle = SkipIdle(after=skip_idle, probe_every=skip_idle) if skip_idle else None
    cascade = Cascade(ladder, on_exhausted="best_effort", log=log, log_content="full", skip_idle=idle)
    slots = asyncio.Semaphore(concurrency)
    results: list[ItemOutcome | None] = [None] * len(items)
    finished = 0

    async def one(i: int, item: dict[str, Any]) -> None:
        nonlocal finished
        async with slots:
            meta = {"task": task.name, "item": item["id"], "mode": mode}
            result = await cascade.run(task.messages(item["text"]), metadata=meta)
        parsed = result.parsed
        results[i] = ItemOutcome(item["id"], item["gold"], parsed, task.score(parsed, item["gold"]), result)
        if progress is not None:
            progress(finished, results[i])  # type: ignore[arg-type]
        finished += 1

    cpu_before = local.cpu_seconds() if local is not None else {}
    t0 = time.perf_counter()
    try:
        work = asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        await (local.guard(work) if local is not None else work)
    finally:
        run.wall_s = time.perf_counter() - t0
        await cascade.aclose()
    if local is not None:
        after = local.cpu_seconds()
        run.cpu_s = {name: after[name] - cpu_before[name] for name in after if name in cpu_before}
    run.outcomes = [o for o in results if o is not None]
    return run
