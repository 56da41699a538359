"""A/B at concurrency 256 on cascade's pooled transport: bare ``post``, the provider's streamed read
(``client.stream`` + ``aiter_bytes``, as ``_post_json`` reads under ``max_response_bytes``), and the
one-rung cascade, interleaved round by round in one process.

    .venv-bench/bin/python benchmarks/transport_ab.py [--rounds 3] [--requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from contextlib import AsyncExitStack

import httpx
from _bench import Servers, measure
from overhead import CONTENT, MESSAGES, MODEL, Call, make_cascade_1

from cascade._providers._http import _Pool


async def make(base_url: str, stack: AsyncExitStack, mode: str) -> Call:
    pool = _Pool(512, httpx.Timeout(60.0), True)
    stack.push_async_callback(pool.aclose)
    url = f"{base_url}/chat/completions"
    body = {"model": MODEL, "messages": MESSAGES}

    async def call() -> object:
        client = pool.acquire()
        try:
            if mode == "post":
                data = (await client.post(url, json=body)).json()
            else:
                async with client.stream("POST", url, json=body) as resp:
                    chunks = [chunk async for chunk in resp.aiter_bytes()]
                data = json.loads(b"".join(chunks))
        finally:
            pool.release(client)
        return data["choices"][0]["message"]["content"]

    return call


async def main_async(args: argparse.Namespace) -> None:
    with Servers(args.server_workers, CONTENT) as srv:
        for rnd in range(args.rounds):
            for mode in ("post", "stream", "cascade-1"):
                async with AsyncExitStack() as stack:
                    if mode == "cascade-1":
                        call = await make_cascade_1(srv.base_url, stack)
                    else:
                        call = await make(srv.base_url, stack, mode)
                    await measure(call, 2 * args.concurrency, args.concurrency, CONTENT, srv)
                    gc.collect()
                    m = await measure(call, args.requests, args.concurrency, CONTENT, srv)
                print(f"round {rnd + 1} {mode:<10} {m.rps:6.0f} req/s {m.cpu_us:6.0f} us CPU/req", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--server-workers", type=int, default=2)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
