"""Compute per token of each local rung, measured on this machine: the basis of the ladder's notional
prices (``cascade/local/_models.py``).

    .venv/bin/python benchmarks/local_prices.py [--rungs small,medium,large] [--items 8]

Per rung, on the native server (2 threads, one request at a time, prompt cache off so every prompt
token is computed): the server's CPU seconds (user + system, from /proc) per prompt token, from the
demo's ticket prompts answered with one token, and per generated token, from 64-token answers. Prints
CPU milliseconds per token and the prices they make at a notional $0.045 per vCPU-hour (an on-demand
cloud vCPU of this class; only the ratios between rungs matter for a cascade's savings).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from cascade.demo import TICKET_TASK, load_items
from cascade.local import DEFAULT_MODELS, LocalLadder

USD_PER_CPU_HOUR = 0.045


async def cpu_per_token(local: LocalLadder, rung: str, bodies: list[dict[str, Any]]) -> tuple[float, int, int]:
    """CPU seconds the server spent on ``bodies`` (sent one at a time), prompt and completion tokens."""
    url = f"{local[rung].base_url}/chat/completions"
    async with httpx.AsyncClient(timeout=300) as client:
        await client.post(url, json={**bodies[0], "model": rung})  # warm-up
        before = local.cpu_seconds()[rung]
        tokens_in = tokens_out = 0
        for body in bodies:
            r = (await client.post(url, json={**body, "model": rung})).json()
            tokens_in += r["usage"]["prompt_tokens"]
            tokens_out += r["usage"]["completion_tokens"]
        return local.cpu_seconds()[rung] - before, tokens_in, tokens_out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rungs", default="small,medium,large")
    parser.add_argument("--items", type=int, default=8)
    args = parser.parse_args()
    names = args.rungs.split(",")
    items = load_items(TICKET_TASK)[: args.items]
    prompts = [
        {"messages": TICKET_TASK.messages(i["text"]), "max_tokens": 1, "temperature": 0, "cache_prompt": False}
        for i in items
    ]
    gens = [
        {
            "messages": [{"role": "user", "content": f"Write a long story about a lighthouse keeper, part {n}."}],
            "max_tokens": 64,
            "temperature": 0,
            "cache_prompt": False,
            "ignore_eos": True,
        }
        for n in range(4)
    ]
    async with LocalLadder([m for m in DEFAULT_MODELS if m.name in names], parallel=1) as local:
        print("| rung | CPU ms per prompt token | CPU ms per generated token | price in / out at $0.045 per vCPU-h |")
        print("|---|---|---|---|")
        for rung in names:
            p_cpu, p_in, _ = await cpu_per_token(local, rung, prompts)
            g_cpu, g_in, g_out = await cpu_per_token(local, rung, gens)
            per_in = p_cpu / p_in
            per_out = max(g_cpu - g_in * per_in, 0.0) / g_out
            usd = USD_PER_CPU_HOUR / 3600 * 1e6  # USD per 1M CPU-seconds-per-token units
            print(
                f"| {rung} | {1000 * per_in:.3f} | {1000 * per_out:.2f} | "
                f"${per_in * usd:.4f} / ${per_out * usd:.4f} per 1M tokens |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
