"""Profile the full cascade (two rungs, a JSON check, JSONL log) at concurrency 256.

    .venv-bench/bin/python benchmarks/profile_hot_path.py [--requests 2000] [--client cascade-2] [--top 40]

Same server and clients as ``overhead.py``. Prints cProfile's functions by own CPU time (tottime) and
the cascade functions by cumulative time: with 256 requests in flight a wall-clock profiler
(pyinstrument) mostly shows awaiting, while this shows where the client's CPU goes. For a flame graph
of a live run: ``py-spy record -o flame.svg -- .venv-bench/bin/python benchmarks/profile_hot_path.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from contextlib import AsyncExitStack

from _bench import Servers, measure
from overhead import CONTENT, run_one_factory


async def main_async(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    with Servers(args.server_workers, CONTENT) as servers, tempfile.TemporaryDirectory() as log_dir:
        async with AsyncExitStack() as stack:
            call = await run_one_factory(args.client, servers.base_url, stack, f"{log_dir}/p.jsonl")
            await measure(call, args.concurrency * 2, args.concurrency, CONTENT, servers)
            profiler = cProfile.Profile()
            profiler.enable()
            m = await measure(call, args.requests, args.concurrency, CONTENT, servers)
            profiler.disable()
    print(f"{args.client} under cProfile: {m.rps:.0f} req/s, {m.cpu_us:.0f} us CPU/req")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(r"_engine|_http|_openai|_events|_retry|_ledger|validators", args.top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--client", default="cascade-2")
    parser.add_argument("--top", type=int, default=40)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
