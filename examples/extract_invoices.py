"""Extract invoice fields into a pydantic model with a cascade; escalate on invalid or unsure answers.

    python examples/extract_invoices.py            # the offline ladder (needs `make local`)
    OPENAI_API_KEY=... python examples/extract_invoices.py
    ANTHROPIC_API_KEY=... python examples/extract_invoices.py

The ladder is defined right here; hosted prices are list prices (USD per 1M tokens, in/out) at the
time of writing. A failed schema check gives the rung one re-ask with the error fed back first. Every
cheap answer must also be *grounded*: each field found in the message (``3.420,00`` is not 3.42, ``£``
is not USD), a check that needs no logprobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from cascade import Anthropic, Cascade, Ladder, OpenAICompatible, RequestParams, Rung
from cascade.demo import INVOICE_TASK, Invoice, grounded, load_items
from cascade.local import LocalLadder
from cascade.validators import Confidence, JsonSchema, SelfConsistency, check

IS_INVOICE = JsonSchema(Invoice)  # result.parsed is an Invoice instance
IS_SURE = Confidence(0.5, aggregate="min")  # the least sure value token
IS_GROUNDED = check(grounded(), name="grounded")  # vendor, number, total, currency, due date all in the text


@contextlib.asynccontextmanager
async def ladder() -> AsyncIterator[Ladder]:
    if os.environ.get("OPENAI_API_KEY"):
        openai = OpenAICompatible("https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
        params = RequestParams(temperature=0, max_tokens=200, response_format={"type": "json_object"},
                               logprobs=True, top_logprobs=5)  # fmt: skip
        yield Ladder([
            Rung(name="nano", provider=openai, model="gpt-4.1-nano", price_in=0.10, price_out=0.40,
                 params=params, validators=[IS_INVOICE, IS_GROUNDED, IS_SURE], reasks=1),
            Rung(name="mini", provider=openai, model="gpt-4.1-mini", price_in=0.40, price_out=1.60,
                 params=params, validators=[IS_INVOICE]),
        ])  # fmt: skip
    elif os.environ.get("ANTHROPIC_API_KEY"):
        claude = Anthropic()
        params = RequestParams(temperature=0, max_tokens=200)
        yield Ladder([
            Rung(name="haiku", provider=claude, model="claude-3-5-haiku-latest", price_in=0.80, price_out=4.0,
                 params=params, validators=[IS_INVOICE, IS_GROUNDED, SelfConsistency(samples=3, threshold=1.0)],
                 reasks=1),
            Rung(name="sonnet", provider=claude, model="claude-sonnet-4-0", price_in=3.0, price_out=15.0,
                 params=params, validators=[IS_INVOICE]),
        ])  # fmt: skip
    else:
        # no logprobs here: llama-cpp-python's server spends about 0.5 s a token on them
        params = RequestParams(temperature=0, max_tokens=96, response_format=INVOICE_TASK.response_format())
        async with LocalLadder() as local:
            yield Ladder([
                local.rung("medium", params=params, validators=[IS_INVOICE, IS_GROUNDED]),
                local.rung("large", params=params, validators=[IS_INVOICE]),
            ])  # fmt: skip


async def main() -> None:
    invoices = load_items(INVOICE_TASK)[:8]
    async with ladder() as rungs, Cascade(rungs, on_exhausted="best_effort") as cascade:
        right = 0
        for item in invoices:
            result = await cascade.run(INVOICE_TASK.messages(item["text"]))
            ok = INVOICE_TASK.score(result.parsed, item["gold"])
            right += ok
            got = result.parsed.model_dump(mode="json") if isinstance(result.parsed, Invoice) else result.output
            print(f"{item['id']} {'ok ' if ok else 'BAD'} by {result.answered_by}: {got}")
        print(f"{right}/{len(invoices)} fully right")


if __name__ == "__main__":
    asyncio.run(main())
