"""Drive a real ``Cascade`` over a ReplayProvider with a fitted policy, one request per record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from .._config import RetryPolicy
from .._engine import Cascade
from .._ladder import Ladder, Rung
from ._data import Dataset, Record
from ._policy import Policy
from ._provider import ReplayProvider
from ._validators import ReplaySignal


@dataclass(frozen=True)
class Outcome:
    """One replayed request: which rung answered, whether it was right, what the ledger charged."""

    record_id: str
    rung: int
    correct: bool
    cost_usd: float
    attempts: int


def build_cascade(dataset: Dataset, policy: Policy, **cascade_kwargs: object) -> tuple[Cascade, ReplayProvider]:
    """The policy as a real ladder: one ReplayProvider, one ``ReplaySignal`` validator per rung."""
    provider = ReplayProvider(dataset, order=policy.order)
    rungs = [
        Rung(
            name=f"{j}:{r.model}",
            provider=provider,
            model=r.model,
            price_in=r.price_in,
            price_out=r.price_out,
            validators=ReplaySignal(policy, j, provider),
            retry=RetryPolicy(attempts=1),
        )
        for j, r in enumerate(policy.rungs)
    ]
    return Cascade(Ladder(rungs), on_exhausted="best_effort", **cascade_kwargs), provider  # type: ignore[arg-type]


async def run_policy(
    dataset: Dataset, policy: Policy, records: Sequence[Record], *, concurrency: int = 32, log: object = None
) -> list[Outcome]:
    """Replay ``records`` through the cascade; outcomes in record order."""
    cascade, provider = build_cascade(dataset, policy, log=log)
    names = [f"{j}:{r.model}" for j, r in enumerate(policy.rungs)]
    inputs = [{"messages": list(r.messages), "extra": {"replay_id": r.id}} for r in records]
    try:
        results = await cascade.map(inputs, concurrency=concurrency)
    finally:
        await cascade.aclose()
    out = []
    for rec, res in zip(records, results, strict=False):
        if res.outcome == "error" or res.answered_by is None:
            raise RuntimeError(f"record {rec.id!r}: the cascade failed: {res.error or res.outcome}")
        parsed = res.parsed if isinstance(res.parsed, dict) else {}
        out.append(
            Outcome(rec.id, names.index(res.answered_by), bool(parsed.get("correct")), res.cost_usd, len(res.attempts))
        )
    provider.reset()
    return out


def run_policy_sync(dataset: Dataset, policy: Policy, records: Sequence[Record], **kwargs: object) -> list[Outcome]:
    return asyncio.run(run_policy(dataset, policy, records, **kwargs))  # type: ignore[arg-type]
