"""Classify support tickets with a cascade: cheap model first, escalate when it is unsure.

    python examples/classify_tickets.py            # the offline ladder (needs `make local`)
    OPENAI_API_KEY=... python examples/classify_tickets.py
    ANTHROPIC_API_KEY=... python examples/classify_tickets.py

The ladder is defined right here. Hosted prices are list prices (USD per 1M tokens, in/out) at the
time of writing; check your provider's page. Anthropic returns no logprobs, so its cheap rung is
checked by self-consistency (3 samples must agree) instead of token confidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from cascade import Anthropic, Cascade, Ladder, OpenAICompatible, RequestParams, Rung
from cascade.demo import LABELS, TICKET_TASK, load_items
from cascade.local import LocalLadder
from cascade.validators import Confidence, JsonSchema, SelfConsistency

SCHEMA = TICKET_TASK.schema
IS_VALID = JsonSchema(SCHEMA)
IS_SURE = Confidence(0.6, label_field="label", labels=LABELS)


@contextlib.asynccontextmanager
async def ladder() -> AsyncIterator[Ladder]:
    if os.environ.get("OPENAI_API_KEY"):
        openai = OpenAICompatible("https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
        fmt = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": SCHEMA, "strict": True}}
        # no logprobs asked here: IS_SURE asks for them on the rung that uses it, and llama-cpp-python's
        # server spends about 0.5 s a token on them (benchmarks/local_logprobs.py)
        params = RequestParams(temperature=0, max_tokens=16, response_format=fmt)
        yield Ladder([
            Rung(name="nano", provider=openai, model="gpt-4.1-nano", price_in=0.10, price_out=0.40,
                 params=params, validators=[IS_VALID, IS_SURE]),
            Rung(name="mini", provider=openai, model="gpt-4.1-mini", price_in=0.40, price_out=1.60,
                 params=params, validators=[IS_VALID]),
        ])  # fmt: skip
    elif os.environ.get("ANTHROPIC_API_KEY"):
        claude = Anthropic()
        params = RequestParams(temperature=0, max_tokens=32)
        yield Ladder([
            Rung(name="haiku", provider=claude, model="claude-3-5-haiku-latest", price_in=0.80, price_out=4.0,
                 params=params, validators=[IS_VALID, SelfConsistency(samples=3, threshold=1.0, key="label")]),
            Rung(name="sonnet", provider=claude, model="claude-sonnet-4-0", price_in=3.0, price_out=15.0,
                 params=params, validators=[IS_VALID]),
        ])  # fmt: skip
    else:
        fmt = {"type": "json_object", "schema": SCHEMA}  # llama.cpp's schema-constrained JSON
        # no logprobs asked here: IS_SURE asks for them on the rung that uses it, and llama-cpp-python's
        # server spends about 0.5 s a token on them (benchmarks/local_logprobs.py)
        params = RequestParams(temperature=0, max_tokens=16, response_format=fmt)
        async with LocalLadder() as local:
            yield Ladder([
                local.rung("medium", params=params, validators=[IS_VALID, IS_SURE]),
                local.rung("large", params=params, validators=[IS_VALID]),
            ])  # fmt: skip


async def main() -> None:
    tickets = load_items(TICKET_TASK)[:10]
    async with ladder() as rungs, Cascade(rungs, on_exhausted="best_effort") as cascade:
        right = 0
        for t in tickets:
            result = await cascade.run(TICKET_TASK.messages(t["text"]))
            label = (result.parsed or {}).get("label")
            right += label == t["gold"]
            print(f"{t['id']} {label!s:10} gold={t['gold']:10} by {result.answered_by} ${result.cost_usd:.6f}")
        print(f"{right}/{len(tickets)} right")


if __name__ == "__main__":
    asyncio.run(main())
