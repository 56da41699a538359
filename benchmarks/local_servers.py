"""Native llama.cpp server against llama-cpp-python's Python server, on the demo's ticket prompts.

    .venv/bin/python benchmarks/local_servers.py [--rungs medium,large] [--items 16] [--servers native,python]

For each server kind and rung: throughput (requests/s) one at a time and 4 in flight, with and
without logprobs (top 5), the server's CPU seconds per request, and the greedy labels and label
probabilities at temperature 0 (compared across servers at the end: the labels of the run with logprobs
one at a time, and the probability the demo's ``Confidence`` check reads). Rung by rung, each server
kind is started alone with that one model and measured in turn, so the two compared figures share the
machine's load; the load averages are printed on every row. The Python server needs
``make local-python-server``; the native one ``make local`` (or ``CASCADE_LLAMA_SERVER``). Both run
with 2 threads and ``OMP_WAIT_POLICY=PASSIVE``; the native one with 4 slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from typing import Any, cast

from cascade import Cascade, Ladder, RequestParams
from cascade.demo import TICKET_TASK, load_items
from cascade.local import DEFAULT_MODELS, SERVER_KINDS, LocalLadder, ServerKind, missing_runtime


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


def load() -> str:
    """The machine's 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rungs", default="medium,large", help="comma-separated rung names (default medium,large)")
    parser.add_argument("--items", type=int, default=16, help="the first N of the demo's tickets (default 16)")
    parser.add_argument("--servers", default="native,python", help="comma-separated: native, python")
    args = parser.parse_args()
    names = args.rungs.split(",")
    known = {m.name: m for m in DEFAULT_MODELS}
    if unknown := [n for n in names if n not in known]:
        parser.error(f"--rungs: unknown rung(s) {unknown}; rungs are {list(known)}")
    servers: list[ServerKind] = []
    for name in args.servers.split(","):
        if name not in SERVER_KINDS:
            parser.error(f"--servers: unknown server {name!r}; servers are {list(SERVER_KINDS)}")
        servers.append(cast(ServerKind, name))
    if args.items < 1:
        parser.error(f"--items: expected >= 1, got {args.items}")
    items = load_items(TICKET_TASK)[: args.items]
    print(f"$ {' '.join(sys.argv)}")
    print(f"{len(items)} tickets, {os.cpu_count()} CPUs, load {load()} at the start")
    print()
    print(
        "| rung | server | logprobs | 1 in flight | 4 in flight | server CPU per request (1 / 4) "
        "| right (1 / 4) | load (1 / 5 / 15 min) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    results: dict[str, dict[str, Any]] = {}
    # Rung by rung, both servers in turn: the two figures compared are measured minutes apart, under
    # about the same load from the machine's other work.
    for rung in names:
        for server in servers:
            if missing_runtime(server):
                print(f"| {rung} | {server} | (not installed: {missing_runtime(server)[0]}) |||||")
                continue
            async with LocalLadder([known[rung]], server=server, parallel=4) as local:
                for logprobs in (False, True):
                    one = await measure(local, rung, items, logprobs, 1)
                    four = await measure(local, rung, items, logprobs, 4)
                    print(
                        f"| {rung} | {server} | {'yes' if logprobs else 'no'} | {one['req_s']:.2f} req/s | "
                        f"{four['req_s']:.2f} req/s | {one['cpu_per_req']:.2f} / {four['cpu_per_req']:.2f} s | "
                        f"{one['right']} / {four['right']} of {len(items)} | {load()} |",
                        flush=True,
                    )
                results.setdefault(rung, {})[server] = {
                    "labels": one["labels"],
                    "p": await label_probabilities(local, rung, items),
                }
    print()
    for rung, by_server in results.items():
        if len(by_server) < 2:
            continue
        a, b = by_server["native"], by_server["python"]
        same = sum(x == y for x, y in zip(a["labels"], b["labels"], strict=True))
        diffs = [abs(x - y) for x, y in zip(a["p"], b["p"], strict=True) if not math.isnan(x - y)]
        flips = sum((x >= 0.7) != (y >= 0.7) for x, y in zip(a["p"], b["p"], strict=True))
        print(
            f"{rung}: same greedy label on {same}/{len(items)}; label probability differs by "
            f"{sum(diffs) / max(len(diffs), 1):.3f} on average (max {max(diffs, default=0.0):.3f}); "
            f"accept-at-0.7 decisions differ on {flips}"
        )
    print(f"load {load()} at the end")


if __name__ == "__main__":
    asyncio.run(main())
