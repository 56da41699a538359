"""Throughput of the standalone test server (``python -m cascade.testing``), driven by httpx.

    .venv/bin/python benchmarks/testserver_throughput.py --requests 5000 --concurrency 50 [--client httpx]

Starts the server in its own process on a free port, fires the requests from one asyncio client
(aiohttp's by default, the lighter one; ``--client httpx`` measures the client cascade's providers use)
and prints requests/s and latency percentiles. Client and server share the machine's CPUs, so the figure
is a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp
import httpx

BODY = {"model": "bench", "messages": [{"role": "user", "content": "ping"}]}


async def drive(base_url: str, total: int, concurrency: int, client: str) -> list[float]:
    if client == "aiohttp":
        return await drive_aiohttp(base_url, total, concurrency)
    return await drive_httpx(base_url, total, concurrency)


async def drive_aiohttp(base_url: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                async with session.post(f"{base_url}/chat/completions", json=BODY) as response:
                    response.raise_for_status()
                    await response.read()
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def drive_httpx(base_url: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                response = await client.post("/chat/completions", json=BODY)
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    proc = subprocess.Popen([sys.executable, "-m", "cascade.testing", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        asyncio.run(drive(base_url, min(200, args.requests), args.concurrency, args.client))  # warm-up
        start = time.perf_counter()
        latencies = asyncio.run(drive(base_url, args.requests, args.concurrency, args.client))
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(20)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"client={args.client} requests={len(latencies)} concurrency={args.concurrency} "
        f"elapsed_s={elapsed:.2f} req_per_s={len(latencies) / elapsed:.0f} "
        f"p50_ms={p50:.1f} p99_ms={p99:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
