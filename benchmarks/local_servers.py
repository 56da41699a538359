"""Native llama.cpp server against llama-cpp-python's Python server, on the demo's ticket prompts.

    .venv/bin/python benchmarks/local_servers.py [--rungs medium,large] [--items 16] [--servers native,python]

For each server kind and rung: throughput (requests/s) one at a time and 4 in flight, with and
without logprobs (top 5), the server's CPU seconds per request, and the greedy labels and label
probabilities at temperature 0 (compared across servers at the end). The Python server needs
``make local-python-server``; the native one ``make local``. Both run with 2 threads and
``OMP_WAIT_POLICY=PASSIVE``; the native one with 4 slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any

from cascade import Cascade, Ladder, RequestParams
from cascade.demo import TICKET_TASK, load_items
from cascade.local import DEFAULT_MODELS, LocalLadder, missing_runtime


async def measure(
    local: LocalLadder, rung: str, items: list[dict[str, Any]], logprobs: bool, inflight: int
) -> dict[str, Any]:
    params = RequestParams(
        temperature=0, max_tokens=TICKET_TASK.max_tokens, response_format=TICKET_TASK.response_format(),
        logprobs=logprobs or None, top_logprobs=5 if logprobs else None,
    )  # fmt: skip
    async with Cascade(Ladder([local.rung(rung, params=params)]), on_exhausted="best_effort") as cascade:
        await cascade.run(TICKET_TASK.messages(items[0]["text"]))  # warm-up
        slots = asyncio.Semaphore(inflight)
        labels: list[str | None] = [None] * len(items)

        async def one(i: int) -> None:
            async with slots:
                result = await cascade.run(TICKET_TASK.messages(items[i]["text"]))
            try:
                labels[i] = json.loads(result.output or "").get("label")
            except (ValueError, AttributeError):
                labels[i] = None

        cpu0 = local.cpu_seconds()[rung]
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(items))))
        wall = time.perf_counter() - t0
        cpu = local.cpu_seconds()[rung] - cpu0
    right = sum(lab == item["gold"] for lab, item in zip(labels, items, strict=True))
    return {"req_s": len(items) / wall, "cpu_per_req": cpu / len(items), "labels": labels, "right": right}


async def label_probabilities(local: LocalLadder, rung: str, items: list[dict[str, Any]]) -> list[float]:
    """The probability of the greedy label's first token, as the demo's Confidence check reads it."""
    from cascade.validators import Confidence

    check = Confidence(0.0, label_field="label", labels=("billing", "technical", "account", "shipping", "refund"))
    params = RequestParams(
        temperature=0, max_tokens=TICKET_TASK.max_tokens, response_format=TICKET_TASK.response_format()
    )
    out = []
    ladder = Ladder([local.rung(rung, params=params, validators=[check])])
    async with Cascade(ladder, on_exhausted="best_effort") as c:
        for item in items:
            result = await c.run(TICKET_TASK.messages(item["text"]))
            scores = [v.score for v in result.attempts[0].verdicts if v.score is not None]
            out.append(scores[0] if scores else math.nan)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rungs", default="medium,large")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--servers", default="native,python")
    args = parser.parse_args()
    names = args.rungs.split(",")
    items = load_items(TICKET_TASK)[: args.items]
    models = [m for m in DEFAULT_MODELS if m.name in names]
    results: dict[str, dict[str, Any]] = {}
    print("| server | rung | logprobs | 1 in flight | 4 in flight | server CPU per request (1 / 4) | right (of n) |")
    print("|---|---|---|---|---|---|---|")
    for server in args.servers.split(","):
        if missing_runtime(server):  # type: ignore[arg-type]
            print(f"| {server} | (not installed: {missing_runtime(server)[0]}) |")  # type: ignore[arg-type]
            continue
        async with LocalLadder(models, server=server, parallel=4) as local:  # type: ignore[arg-type]
            for rung in names:
                for logprobs in (False, True):
                    one = await measure(local, rung, items, logprobs, 1)
                    four = await measure(local, rung, items, logprobs, 4)
                    print(
                        f"| {server} | {rung} | {'yes' if logprobs else 'no'} | {one['req_s']:.2f} req/s | "
                        f"{four['req_s']:.2f} req/s | {one['cpu_per_req']:.2f} / {four['cpu_per_req']:.2f} s | "
                        f"{one['right']} / {four['right']} of {len(items)} |",
                        flush=True,
                    )
                results.setdefault(server, {})[rung] = {
                    "labels": one["labels"],
                    "p": await label_probabilities(local, rung, items),
                }
    if len(results) == 2:
        a, b = results["native"], results["python"]
        for rung in names:
            same = sum(x == y for x, y in zip(a[rung]["labels"], b[rung]["labels"], strict=True))
            diffs = [abs(x - y) for x, y in zip(a[rung]["p"], b[rung]["p"], strict=True) if not math.isnan(x - y)]
            flips = sum((x >= 0.7) != (y >= 0.7) for x, y in zip(a[rung]["p"], b[rung]["p"], strict=True))
            print(
                f"{rung}: same greedy label on {same}/{len(items)}; label probability differs by "
                f"{sum(diffs) / max(len(diffs), 1):.3f} on average; accept-at-0.7 decisions differ on {flips}"
            )


if __name__ == "__main__":
    asyncio.run(main())
