"""CPU of the engine alone per attempt: the cascade over an in-process provider that answers at once.

    .venv/bin/python benchmarks/engine_cpu.py [--requests 20000] [--rounds 5] [--profile]

No sockets, so what is left is the router's own work per request: message checks, the ledger, the
retry wrapper, validators, the result, the events and the JSONL log. Printed per configuration as
microseconds of process CPU per attempt (median and min-max over rounds). ``--profile`` prints the
cProfile of the full configuration instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time

from _bench import SCHEMA, Instant

from cascade import Cascade, Rung
from cascade.validators import JsonSchema

MESSAGES = [{"role": "user", "content": "Classify: win a free cruise now!"}]


def configs(log_path: str) -> dict[str, tuple[Cascade, int]]:
    p = Instant()
    small = Rung(name="small", provider=p, model="s", price_in=0.15, price_out=0.6)
    big = Rung(name="big", provider=p, model="b", price_in=2.5, price_out=10.0)
    needs = {**SCHEMA, "required": ["label", "rationale"]}
    small_strict = Rung(name="small", provider=p, model="s", price_in=0.15, price_out=0.6, validators=JsonSchema(needs))
    return {
        "1 rung, no validators, no log": (Cascade([small]), 1),
        "1 rung, JSONL log": (Cascade([small], log=log_path + ".1"), 1),
        "2 rungs, JsonSchema, no log": (Cascade([small, big], validators=JsonSchema(SCHEMA)), 1),
        "2 rungs, JsonSchema, JSONL log": (Cascade([small, big], validators=JsonSchema(SCHEMA), log=log_path), 1),
        "2 rungs, escalating, JSONL log": (
            Cascade([small_strict, big], validators=JsonSchema(SCHEMA), log=log_path + ".esc"),
            2,
        ),
    }


async def run(cascade: Cascade, n: int) -> float:
    for _ in range(min(n, 500)):  # warm-up
        await cascade.run(MESSAGES)
    gc.collect()
    c0 = time.process_time()
    for _ in range(n):
        await cascade.run(MESSAGES)
    return time.process_time() - c0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = configs(os.path.join(tmp, "log.jsonl"))
        if args.profile:
            import cProfile
            import pstats

            cascade, _ = cases["2 rungs, JsonSchema, JSONL log"]
            prof = cProfile.Profile()
            prof.runcall(asyncio.run, run(cascade, args.requests))
            pstats.Stats(prof).strip_dirs().sort_stats("tottime").print_stats(35)
            return 0
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (cascade, attempts) in cases.items():
                cpu = asyncio.run(run(cascade, args.requests))
                results[name].append(cpu / (args.requests * attempts) * 1e6)
        for cascade, _ in cases.values():
            cascade.close()
    print(f"engine CPU per attempt, us ({args.requests} requests x {args.rounds} rounds; median (min-max))")
    for name, values in results.items():
        print(f"  {name:<32} {statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
