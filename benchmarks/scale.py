"""Batches: throughput and peak memory of ``Cascade.map`` and ``Cascade.imap`` at 10,000 and 100,000 requests.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000] [--concurrency 500] [--modes imap,map]
                                         [--provider http|instant] [--server-workers 2]

Each (mode, size) runs in a fresh Python process, so every peak RSS (``ru_maxrss``) is its own. The
cascade is the full one of ``overhead.py`` (two rungs, JsonSchema, JSONL log) against the loopback
test server in separate processes (``--provider instant``: an in-process provider that answers at
once, to isolate the engine). ``imap`` streams results (the loop here keeps a count, not the results);
``map`` returns the list of all results, which grows with the batch by design: its growth divided by
the batch size is printed as bytes per result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from _bench import CONTENT, SCHEMA, Instant, Servers

from cascade import Cascade, OpenAICompatible, Rung
from cascade.validators import JsonSchema


def rss_kb() -> int:
    """Current resident set size (Linux /proc), KB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def inputs(n: int) -> Any:
    for i in range(n):
        yield [{"role": "user", "content": f"Classify message {i}: win a free cruise now!"}]


async def child(args: argparse.Namespace) -> dict[str, Any]:
    provider: Any = Instant(yield_each=True) if args.provider == "instant" else OpenAICompatible(args.base_url)
    rungs = [
        Rung(name="small", provider=provider, model="gpt-4o-mini", price_in=0.15, price_out=0.6),
        Rung(name="big", provider=provider, model="gpt-4o", price_in=2.5, price_out=10.0),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        async with Cascade(rungs, validators=JsonSchema(SCHEMA), log=log) as cascade:
            await cascade.map(inputs(args.concurrency * 2), concurrency=args.concurrency)  # warm-up
            before = rss_kb()
            t0 = time.perf_counter()
            accepted = 0
            if args.mode == "imap":
                async for _, result in cascade.imap(inputs(args.n), concurrency=args.concurrency):
                    accepted += result.accepted
            else:
                results = await cascade.map(inputs(args.n), concurrency=args.concurrency)
                accepted = sum(r.accepted for r in results)
            wall = time.perf_counter() - t0
            after = rss_kb()
        with open(log) as f:
            log_lines = sum(1 for _ in f)
    if accepted != args.n or log_lines != 2 * (args.n + args.concurrency * 2):
        raise RuntimeError(f"accepted {accepted} of {args.n}; {log_lines} log lines")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return {
        "mode": args.mode,
        "n": args.n,
        "rps": args.n / wall,
        "wall_s": wall,
        "peak_rss_kb": peak,
        "rss_before_kb": before,
        "rss_after_kb": after,
    }


def parent(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    rows = []
    with Servers(args.server_workers, CONTENT) as servers:
        for mode in modes:
            for n in sizes:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    "--mode",
                    mode,
                    "--n",
                    str(n),
                    "--base-url",
                    servers.base_url,
                    "--concurrency",
                    str(args.concurrency),
                    "--provider",
                    args.provider,
                ]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                rows.append(row)
                mb = {k: row[k] / 1024 for k in ("peak_rss_kb", "rss_before_kb", "rss_after_kb")}
                print(
                    f"  {mode:<5} n={n:<7} {row['rps']:7.0f} req/s  peak RSS {mb['peak_rss_kb']:7.1f} MB  "
                    f"(RSS before batch {mb['rss_before_kb']:.1f} MB, after {mb['rss_after_kb']:.1f} MB)",
                    flush=True,
                )
    print(f"\nprovider={args.provider}, concurrency={args.concurrency}, full cascade (2 rungs, JsonSchema, JSONL log)")
    for mode in modes:
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["n"])
        if len(mine) >= 2:
            small, big = mine[0], mine[-1]
            growth = big["peak_rss_kb"] / small["peak_rss_kb"] - 1
            per = (big["peak_rss_kb"] - small["peak_rss_kb"]) * 1024 / (big["n"] - small["n"])
            print(
                f"{mode:<5} peak RSS at n={big['n']} vs n={small['n']}: {growth:+.1%} "
                f"({per:.0f} bytes per extra request)"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--modes", default="imap,map")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--provider", choices=("http", "instant"), default="http")
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="imap", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args))))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
