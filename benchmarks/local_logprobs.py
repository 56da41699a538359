"""What asking for logprobs costs on the local ladder: one demo item per task, on each rung, with and
without ``logprobs``, same prompt and schema-constrained decoding, each timed after one warm-up call.

    .venv/bin/python benchmarks/local_logprobs.py [--rungs medium,large] [--repeat 3]

llama-cpp-python's server builds the top logprobs of every generated token by sorting the whole
vocabulary in Python, so the cost grows with the answer's length (a ticket's label: about 6
tokens; an invoice: about 55). Prints seconds per request and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from cascade import Cascade, Ladder, RequestParams
from cascade.demo import INVOICE_TASK, TICKET_TASK, Task, load_items
from cascade.local import LocalLadder
from cascade.local._models import DEFAULT_MODELS


async def timed(local: LocalLadder, rung: str, task: Task, logprobs: bool, repeat: int) -> tuple[float, int]:
    params = RequestParams(
        temperature=0, max_tokens=task.max_tokens, response_format=task.response_format(),
        logprobs=logprobs or None, top_logprobs=10 if logprobs else None,
    )  # fmt: skip
    item = load_items(task)[1]
    async with Cascade(Ladder([local.rung(rung, params=params)]), on_exhausted="best_effort") as cascade:
        await cascade.run(task.messages(item["text"]))  # warm-up: the prompt prefix is cached after this
        seconds, tokens = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = await cascade.run(task.messages(item["text"]))
            seconds.append(time.perf_counter() - t0)
            tokens = result.attempts[-1].tokens_out
    return statistics.median(seconds), tokens


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rungs", default="medium,large")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = args.rungs.split(",")
    async with LocalLadder([m for m in DEFAULT_MODELS if m.name in names]) as local:
        print("| rung | task | tokens out | without logprobs | with logprobs | ratio |")
        print("|---|---|---|---|---|---|")
        for rung in names:
            for task in (TICKET_TASK, INVOICE_TASK):
                plain, n = await timed(local, rung, task, False, args.repeat)
                with_lp, _ = await timed(local, rung, task, True, args.repeat)
                print(f"| {rung} | {task.name} | {n} | {plain:.2f} s | {with_lp:.2f} s | {with_lp / plain:.1f}x |")


if __name__ == "__main__":
    asyncio.run(main())
