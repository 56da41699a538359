"""The router's own overhead: cascade against bare httpx, the openai client and LiteLLM's Router.

    make bench-env        # .venv-bench with cascade[testing], litellm, openai, pyinstrument (not package deps)
    .venv-bench/bin/python benchmarks/overhead.py [--requests 4000] [--rounds 3] [--server-workers 2]

All clients call the same loopback OpenAI-compatible server (``python -m cascade.testing``, answering
instantly) running in separate processes, so the server does not share the GIL with the client under
test; ``--server-workers N`` runs N server processes on one port with SO_REUSEPORT. For each client and
concurrency (1 and 256) the script measures, in this one process, throughput and client CPU per
request (``time.process_time`` over the run, all threads, divided by requests), and prints each as a
ratio to bare httpx measured in the same round. Rounds interleave the clients, so load from elsewhere
on the machine hits all of them alike; the table shows the median over rounds and the spread (min-max).
The ``srv`` column is the servers' CPU over wall time: when it nears the number of server processes,
the server, not the client, is the bottleneck.

Clients:
  httpx      AsyncClient.post + .json(), one client with a pool of 512 connections
  httpx-pool the same call on cascade's transport: 512 connections as httpx clients of 8 each
  openai     AsyncOpenAI.chat.completions.create, same pool size, default retries
  litellm    litellm.Router.acompletion with one deployment (its defaults: aiohttp transport)
  cascade-1  Cascade with one rung, no validators, no log
  cascade-2  two rungs, a ``JsonSchema`` validator, JSONL log on (the first rung accepts)
  cascade-esc  as cascade-2, but the first rung's schema needs a field the answer lacks: two attempts per
             request, so CPU per attempt includes an escalation
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from _bench import Measure, Servers, measure

from cascade import Cascade, OpenAICompatible, Rung
from cascade.validators import JsonSchema

MODEL = "gpt-4o-mini"  # a name LiteLLM knows the price of; the test server answers any model
CONTENT = '{"label": "spam", "score": 0.9}'
MESSAGES = [{"role": "user", "content": "Classify: win a free cruise now!"}]
POOL = 512

Call = Callable[[], Awaitable[object]]


async def make_httpx(base_url: str, stack: AsyncExitStack) -> Call:
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    client = await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=60))
    url = f"{base_url}/chat/completions"
    body = {"model": MODEL, "messages": MESSAGES}

    async def call() -> object:
        resp = await client.post(url, json=body)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    return call


async def make_httpx_pool(base_url: str, stack: AsyncExitStack) -> Call:
    """Bare httpx on the pool cascade's providers use (512 connections as clients of 8), to tell the
    router's own CPU from the transport's."""
    from cascade._providers._http import _Pool

    pool = _Pool(POOL, httpx.Timeout(60.0), True)
    stack.push_async_callback(pool.aclose)
    url = f"{base_url}/chat/completions"
    body = {"model": MODEL, "messages": MESSAGES}

    async def call() -> object:
        client = pool.acquire()
        try:
            resp = await client.post(url, json=body)
        finally:
            pool.release(client)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    return call


async def make_openai(base_url: str, stack: AsyncExitStack) -> Call:
    import openai

    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    http = openai.DefaultAsyncHttpxClient(limits=limits)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", http_client=http)
    await stack.enter_async_context(client)

    async def call() -> object:
        out = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return out.choices[0].message.content

    return call


async def make_litellm(base_url: str, stack: AsyncExitStack) -> Call:
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    router = litellm.Router(
        model_list=[
            {
                "model_name": MODEL,
                "litellm_params": {"model": f"openai/{MODEL}", "api_base": base_url, "api_key": "sk-bench"},
            }
        ]
    )

    async def call() -> object:
        out = await router.acompletion(model=MODEL, messages=MESSAGES)
        return out.choices[0].message.content

    return call


def _cascade_call(cascade: Cascade, stack: AsyncExitStack) -> Call:
    stack.push_async_callback(cascade.aclose)

    async def call() -> object:
        return (await cascade.run(MESSAGES)).output

    return call


SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}, "score": {"type": "number"}},
    "required": ["label"],
}
WITH_RATIONALE = {**SCHEMA, "required": ["label", "rationale"]}  # the server's answer fails it: escalation


async def make_cascade_1(base_url: str, stack: AsyncExitStack) -> Call:
    rung = Rung(name="small", provider=OpenAICompatible(base_url), model=MODEL, price_in=0.15, price_out=0.6)
    return _cascade_call(Cascade([rung]), stack)


async def make_cascade_2(base_url: str, stack: AsyncExitStack, log_path: str) -> Call:
    provider = OpenAICompatible(base_url)
    rungs = [
        Rung(name="small", provider=provider, model=MODEL, price_in=0.15, price_out=0.6),
        Rung(name="big", provider=provider, model="gpt-4o", price_in=2.5, price_out=10.0),
    ]
    return _cascade_call(Cascade(rungs, validators=JsonSchema(SCHEMA), log=log_path), stack)


async def make_cascade_esc(base_url: str, stack: AsyncExitStack, log_path: str) -> Call:
    provider = OpenAICompatible(base_url)
    rungs = [
        Rung(
            name="small",
            provider=provider,
            model=MODEL,
            price_in=0.15,
            price_out=0.6,
            validators=JsonSchema(WITH_RATIONALE),
        ),
        Rung(name="big", provider=provider, model="gpt-4o", price_in=2.5, price_out=10.0),
    ]
    return _cascade_call(Cascade(rungs, validators=JsonSchema(SCHEMA), log=log_path), stack)


CLIENTS = ["httpx", "httpx-pool", "openai", "litellm", "cascade-1", "cascade-2", "cascade-esc"]
ATTEMPTS = {"cascade-esc": 2}  # attempts (HTTP calls) per request


async def run_one_factory(name: str, base_url: str, stack: AsyncExitStack, log_path: str) -> Call:
    """The call of client ``name``; its resources close with ``stack``."""
    if name == "httpx":
        return await make_httpx(base_url, stack)
    if name == "httpx-pool":
        return await make_httpx_pool(base_url, stack)
    if name == "openai":
        return await make_openai(base_url, stack)
    if name == "litellm":
        return await make_litellm(base_url, stack)
    if name == "cascade-1":
        return await make_cascade_1(base_url, stack)
    if name == "cascade-2":
        return await make_cascade_2(base_url, stack, log_path)
    if name == "cascade-esc":
        return await make_cascade_esc(base_url, stack, log_path)
    raise ValueError(f"--clients: unknown client {name!r}; known: {CLIENTS}")


async def run_one(name: str, base_url: str, total: int, concurrency: int, servers: Servers, log_dir: str) -> Measure:
    log_path = os.path.join(log_dir, f"{name}-{concurrency}.jsonl")
    async with AsyncExitStack() as stack:
        call = await run_one_factory(name, base_url, stack, log_path)
        warm = max(concurrency * 2, total // 10)
        await measure(call, warm, concurrency, CONTENT, servers)  # connections open, caches warm
        gc.collect()
        result = await measure(call, total, concurrency, CONTENT, servers)
    if os.path.exists(log_path):  # the log really was written: one attempt event per attempt + one request event
        with open(log_path) as f:
            lines = sum(1 for _ in f)
        expected = (warm + total) * (ATTEMPTS.get(name, 1) + 1)
        if lines != expected:
            raise RuntimeError(f"{name}: {lines} log lines, expected {expected}")
        os.remove(log_path)
    return result


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


async def main_async(args: argparse.Namespace) -> int:
    clients = [c for c in args.clients.split(",") if c]
    if "httpx" not in clients:
        clients.insert(0, "httpx")
    try:
        import litellm  # noqa: F401
        import openai  # noqa: F401
    except ImportError:
        print("openai/litellm not installed: run `make bench-env` and use .venv-bench/bin/python", file=sys.stderr)
        clients = [c for c in clients if c not in ("openai", "litellm")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    results: dict[tuple[str, int], list[Measure]] = {}
    with Servers(args.server_workers, CONTENT) as servers, tempfile.TemporaryDirectory() as log_dir:
        print(f"server: {args.server_workers} process(es) at {servers.base_url}; client pid {os.getpid()}")
        for rnd in range(args.rounds):
            for conc in concurrencies:
                total = args.requests if conc > 1 else args.requests_serial
                for name in clients:
                    m = await run_one(name, servers.base_url, total, conc, servers, log_dir)
                    results.setdefault((name, conc), []).append(m)
                    print(
                        f"  round {rnd + 1} c={conc:<4} {name:<11} {m.rps:8.0f} req/s  {m.cpu_us:7.0f} us CPU/req  "
                        f"server busy {m.server_busy:.2f}",
                        flush=True,
                    )
    print()
    print(f"{args.rounds} rounds; median (min-max). x = ratio to bare httpx of the same round.")
    header = (
        f"{'client':<11} {'conc':>4} {'req/s':>20} {'x httpx':>18} {'CPU us/req':>20} {'x httpx':>18} "
        f"{'extra us/attempt':>22} {'srv':>5}"
    )
    print(header)
    print("-" * len(header))
    table = []
    for conc in concurrencies:
        base = results[("httpx", conc)]
        for name in clients:
            ms = results[(name, conc)]
            attempts = ATTEMPTS.get(name, 1)
            rps_x = [m.rps / b.rps for m, b in zip(ms, base, strict=True)]
            cpu_x = [m.cpu_us / b.cpu_us for m, b in zip(ms, base, strict=True)]
            # the router's own CPU: against the same transport (cascade's pool) for cascade, else bare httpx
            ref = results.get(("httpx-pool", conc), base) if name.startswith("cascade") else base
            extra = [(m.cpu_us - attempts * b.cpu_us) / attempts for m, b in zip(ms, ref, strict=True)]
            srv = statistics.median(m.server_busy for m in ms)
            print(
                f"{name:<11} {conc:>4} {_spread([m.rps for m in ms], '.0f'):>20} {_spread(rps_x, '.2f'):>18} "
                f"{_spread([m.cpu_us for m in ms], '.0f'):>20} {_spread(cpu_x, '.2f'):>18} "
                f"{_spread(extra, '.0f') if name not in ('httpx', 'httpx-pool') else '-':>22} {srv:>5.2f}"
            )
            table.append(
                {
                    "client": name,
                    "concurrency": conc,
                    "attempts_per_request": attempts,
                    "rps": [m.rps for m in ms],
                    "cpu_us": [m.cpu_us for m in ms],
                    "rps_x_httpx": rps_x,
                    "cpu_x_httpx": cpu_x,
                    "extra_cpu_us_per_attempt": extra,
                    "server_busy": [m.server_busy for m in ms],
                }
            )
    print(
        "extra us/attempt: client CPU per request minus the baseline's per HTTP call, divided by attempts; "
        "the baseline is httpx-pool (the same transport) for cascade rows, bare httpx for the others."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": table}, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="timed requests per client at concurrency > 1")
    parser.add_argument("--requests-serial", type=int, default=1000, help="timed requests at concurrency 1")
    parser.add_argument("--concurrency", default="1,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-workers", type=int, default=2, help="server processes sharing the port")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of the price list
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
