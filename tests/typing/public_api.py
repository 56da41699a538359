"""Typing tests: checked by ``mypy --strict tests/typing`` (``make typecheck``), not run by pytest.

Each ``assert_type`` fails the type check when a public name's type drifts; each call below is the
documented way to use it and must type-check as written (the README's first example among them).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Literal

from pydantic import BaseModel
from typing_extensions import assert_type

from cascade import (
    Attempt,
    Cascade,
    CascadeExhausted,
    CascadeResult,
    Ladder,
    OpenAICompatible,
    RequestParams,
    Rung,
)
from cascade.validators import Candidate, Check, CheckFn, Confidence, JsonSchema, SelfConsistency, Verdict, check


class Ticket(BaseModel):
    label: Literal["billing", "refund"]


@check(name="cites_source")
def cites_source(candidate: Candidate) -> bool:
    return "http" in candidate.text


@check
async def short(candidate: Candidate) -> Verdict:
    n = len(candidate.text.split())
    return Verdict(n <= 50, "ok" if n <= 50 else "custom:too_long", score=n)


def is_json(candidate: Candidate) -> bool:
    try:
        json.loads(candidate.text)
    except ValueError:
        return False
    return True


assert_type(cites_source, Check)
assert_type(short, Check)
assert_type(check(is_json), Check)
assert_type(check(name="is_json"), Callable[[CheckFn], Check])

provider = OpenAICompatible("http://127.0.0.1:8000/v1")
ladder = Ladder(
    [
        Rung(name="mini", provider=provider, model="mini", price_in=0.15, price_out=0.6),
        Rung(
            name="4o", provider=provider, model="4o", price_in=2.5, price_out=10.0, params=RequestParams(max_tokens=16)
        ),
    ]
)
assert_type(ladder.top, Rung)

# every documented form of validators= type-checks: checks, composites, a model class, a schema dict
cascade = Cascade(ladder, validators=[JsonSchema(Ticket), Confidence(0.8, label_field="label")], budget_usd=0.01)
Cascade(ladder, validators=JsonSchema(Ticket) & SelfConsistency(samples=3, threshold=0.6))
Cascade(ladder, validators=[Ticket, cites_source, check(is_json)])
Cascade(ladder, validators={"type": "object"}, on_exhausted="best_effort", log="escalations.jsonl")

result = cascade.run_sync([{"role": "user", "content": "charged twice"}])
assert_type(result, CascadeResult)
assert_type(result.output, str | None)
assert_type(result.answered_by, str | None)
assert_type(result.cost_usd, float)
assert_type(result.attempts, list[Attempt])
assert_type(cascade.map_sync([[{"role": "user", "content": "hi"}]]), list[CascadeResult])


async def batch(items: list[list[dict[str, str]]]) -> AsyncIterator[str]:
    async with Cascade(ladder) as c:
        assert_type(await c.run(items[0]), CascadeResult)
        async for index, res in c.imap(items, concurrency=4):
            assert_type(index, int)
            yield res.output or ""


try:
    cascade.run_sync([{"role": "user", "content": "hi"}])
except CascadeExhausted as exc:
    assert_type(exc.result, CascadeResult)
