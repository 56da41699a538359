"""The gateway's throughput and latency beside the library in-process and LiteLLM's proxy, on one upstream.

    make bench-env        # .venv-bench: cascade[testing,gateway], litellm and its proxy's deps (not package deps)
    .venv-bench/bin/python benchmarks/gateway.py [--requests 2000] [--concurrency 64] [--rounds 3]

The upstream is the suite's test server (``python -m cascade.testing``, answering at once) in its own
process. Measured in this one run, at the same concurrency, with the same answer:

  direct    straight to the upstream: the floor every HTTP hop adds to
  library   ``Cascade.run`` in this process: two rungs, a ``JsonSchema`` check, the first rung accepts
  gateway   the same ladder behind ``cascade serve`` (one uvicorn process, --no-auth)
  litellm   ``litellm --config`` (LiteLLM's proxy, one process) on the same upstream

The HTTP systems are called with one aiohttp session (httpx's single pool is itself the bottleneck at
this concurrency, see benchmarks/overhead.py); the library uses its own transport.

For each: requests/s and the p50/p99 latency of one request as the client sees it, medians over rounds
that interleave the systems (so load from elsewhere on the machine hits all alike), then the ratios
gateway/library and gateway/litellm. Every answer is checked; a run with a wrong answer fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import httpx
from _bench import CONTENT, SCHEMA, Servers, free_port

from cascade import Cascade, Ladder, OpenAICompatible, Rung
from cascade.validators import JsonSchema

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Classify: win a free prize now"}]
Call = Callable[[], Awaitable[str]]

TOML = """
[cascades.bench]
checks = {{ json_schema = {schema} }}

[[cascades.bench.rungs]]
name = "small"
base_url = "{url}"
model = "{model}"
price_in = 0.15
price_out = 0.6

[[cascades.bench.rungs]]
name = "large"
base_url = "{url}"
model = "{model}-large"
price_in = 2.5
price_out = 10
"""

LITELLM = """
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {url}
      api_key: sk-bench
general_settings:
  disable_spend_logs: true
  dangerously_permit_weak_or_unset_master_key: true  # loopback benchmark, no keys
litellm_settings:
  telemetry: false
"""


def toml_schema() -> str:
    import json

    return (
        json.dumps(SCHEMA)
        .replace('":', '" =')
        .replace("{", "{ ")
        .replace("}", " }")
        .replace("[", "[ ")
        .replace("]", " ]")
    )


async def run(call: Call, total: int, concurrency: int) -> tuple[float, list[float]]:
    """``total`` calls with ``concurrency`` in flight: (requests/s, each call's latency in seconds)."""
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            got = await call()
            latencies.append(time.perf_counter() - t0)
            if got != CONTENT:
                raise RuntimeError(f"wrong answer: {got[:200]!r}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start), latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def http_call(client: aiohttp.ClientSession, url: str, model: str) -> Call:
    body = {"model": model, "messages": MESSAGES}

    async def call() -> str:
        async with client.post(url, json=body) as response:
            response.raise_for_status()
            data = await response.json()
        return str(data["choices"][0]["message"]["content"])

    return call


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s}s")


def start(stack: ExitStack, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    stack.callback(log.close)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    return proc


async def bench(args: argparse.Namespace, upstream: str, gateway: str, litellm: str | None) -> None:
    provider = OpenAICompatible(upstream)
    ladder = Ladder(
        [
            Rung(name="small", provider=provider, model=MODEL, price_in=0.15, price_out=0.6),
            Rung(name="large", provider=provider, model=f"{MODEL}-large", price_in=2.5, price_out=10),
        ]
    )
    cascade = Cascade(ladder, validators=JsonSchema(SCHEMA))

    async def library() -> str:
        return str((await cascade.run(MESSAGES)).output)

    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
        systems: dict[str, Call] = {
            "direct": http_call(client, f"{upstream}/chat/completions", MODEL),
            "library": library,
            "gateway": http_call(client, f"{gateway}/v1/chat/completions", "cascade/bench"),
        }
        if litellm is not None:
            systems["litellm"] = http_call(client, f"{litellm}/v1/chat/completions", MODEL)
        for name, call in systems.items():  # warm up: connections, imports, caches
            try:
                await run(call, min(200, args.requests), args.concurrency)
            except Exception as exc:
                raise RuntimeError(f"{name}: {type(exc).__name__}: {exc}") from exc
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in systems}
        for _ in range(args.rounds):
            for name, call in systems.items():
                rps, latencies = await run(call, args.requests, args.concurrency)
                results[name].append((rps, quantile(latencies, 0.5), quantile(latencies, 0.99)))
    await cascade.aclose()
    print(f"\nconcurrency {args.concurrency}, {args.requests} requests x {args.rounds} rounds (medians)")
    print(f"{'system':<10} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    medians = {}
    for name, rows in results.items():
        rps, p50, p99 = (statistics.median(r[i] for r in rows) for i in range(3))
        medians[name] = (rps, p50, p99)
        print(f"{name:<10} {rps:>9.0f} {p50 * 1000:>9.1f} {p99 * 1000:>9.1f}")
    gw = medians["gateway"]
    print("\nratios (gateway / other): req/s, p50, p99")
    for other in ("library", "litellm", "direct"):
        if other in medians:
            o = medians[other]
            print(f"  gateway / {other:<8} {gw[0] / o[0]:.2f}x  {gw[1] / o[1]:.2f}x  {gw[2] / o[2]:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    args = parser.parse_args()
    litellm_bin = shutil.which("litellm", path=str(Path(sys.executable).parent))
    if litellm_bin is None and not args.no_litellm:
        print("litellm's proxy is not installed: run `make bench-env` and use .venv-bench/bin/python", file=sys.stderr)
        args.no_litellm = True
    with Servers(workers=1, content=CONTENT) as upstream, ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gateway.toml"
        config.write_text(TOML.format(schema=toml_schema(), url=upstream.base_url, model=MODEL))
        port = free_port()
        cmd = [sys.executable, "-m", "cascade._cli", "serve", str(config), "--no-auth", "--port", str(port)]
        gateway = f"http://127.0.0.1:{port}"
        wait_ready(f"{gateway}/healthz", start(stack, [*cmd, "--log-level", "warning"]), "cascade serve")
        litellm = None
        if not args.no_litellm:
            assert litellm_bin is not None
            cfg = Path(tmp) / "litellm.yaml"
            cfg.write_text(LITELLM.format(model=MODEL, url=upstream.base_url))
            lport = free_port()
            env = {
                **os.environ,
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            }
            proc = start(
                stack,
                [litellm_bin, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(lport), "--num_workers", "1"],
                env,
            )
            litellm = f"http://127.0.0.1:{lport}"
            wait_ready(f"{litellm}/health/liveliness", proc, "litellm proxy")
        asyncio.run(bench(args, upstream.base_url, gateway, litellm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
