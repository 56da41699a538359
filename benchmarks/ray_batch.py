"""The cascade on Ray Data against in-process ``Cascade.map``, on the same server, in one run.

    .venv/bin/python benchmarks/ray_batch.py [--rows 4000] [--full-rows 20000] [--concurrency 16]

One test server (``cascade.testing.TestServer``, its own process) answers every mode; the ladder is two
rungs with a JSON-schema check, every fifth row escalating, a JSONL log per worker. Measured, in this
order, on a local Ray cluster of 2 CPUs (started once, not timed):

* ``map``: ``Cascade.map`` in this process, ``--concurrency`` in flight (the baseline);
* ``ray 1 worker`` / ``ray 2 workers``: ``cascade.ray.map_dataset``, ``--concurrency`` per worker;
* ``ray 2 workers + job cap``: the same with a ``JobBudget`` (two actor calls per row: its cost);
* ``map`` again, last: how much the machine itself drifted over the run.

Rows/s include each job's actor start-up (a job pays it); the start-up alone is the time of a job of
two rows per worker, and the rows/s after it are also shown. The overhead per row is (1-worker time
after start-up - mean map time) / rows. Then the issue's full run: ``--full-rows`` rows, 2 workers, 5%
injected faults, checked: rows out = rows in, the ledger (sum of the rows' costs) = the sum of every
worker's attempts, and the merged ``cascade stats`` = the sum of the per-worker ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cascade import Cascade, OpenAICompatible, RetryPolicy, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import JsonSchema

LABEL = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
PROMPT = "Ticket {id}: {title}"


def answer(body: dict[str, Any]) -> Reply:
    found = re.match(r"Ticket (\d+):", body["messages"][-1]["content"])
    n = int(found.group(1)) if found else -1
    if body["model"] == "small-m" and n % 5 == 0:
        return Reply(content='{"lable": "oops"}')
    return Reply(content=f'{{"label": "L{n}"}}')


def serve(urls: Any, faults: Any) -> None:
    """The server process: answers as ``answer``; a fault rate set through the ``faults`` queue."""
    with TestServer(record=False) as srv:
        srv.responder("small-m", answer)
        srv.responder("large-m", answer)
        urls.put(srv.base_url)
        while True:
            rate = faults.get()
            if rate is None:
                return
            srv.fault_rate(rate, seed=16)
            urls.put("ok")


class Ladder:
    """The factory: picklable, builds the cascade on the worker."""

    def __init__(self, base_url: str, budget_usd: float | None = 0.002) -> None:
        self.base_url, self.budget_usd = base_url, budget_usd

    def __call__(self, log: str | None) -> Cascade:
        server = OpenAICompatible(self.base_url)
        quick = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.05)
        rungs = [
            Rung(name="small", provider=server, model="small-m", price_in=1, price_out=2, retry=quick),
            Rung(name="large", provider=server, model="large-m", price_in=20, price_out=60, retry=quick),
        ]
        return Cascade(rungs, validators=JsonSchema(LABEL), log=log, budget_usd=self.budget_usd)


def tickets(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"printer {i} is on fire"} for i in range(n)]


def in_process(base_url: str, n: int, concurrency: int, log_dir: Path) -> float:
    items = [[{"role": "user", "content": PROMPT.format(**t)}] for t in tickets(n)]
    cascade = Ladder(base_url)(str(log_dir / "map.jsonl"))

    async def go() -> float:
        start = time.perf_counter()
        results = await cascade.map(items, concurrency=concurrency)
        took = time.perf_counter() - start
        assert len(results) == n
        await cascade.aclose()
        return took

    return asyncio.run(go())


def on_ray(
    base_url: str, n: int, workers: int, concurrency: int, log_dir: Path, budget: Any = None
) -> tuple[float, Any]:
    import ray.data

    from cascade.ray import map_dataset

    ds = ray.data.from_items(tickets(n))
    start = time.perf_counter()
    out = map_dataset(
        ds,
        Ladder(base_url),
        prompt=PROMPT,
        id_column="id",
        workers=workers,
        concurrency=concurrency,
        batch_size=200,
        log_dir=log_dir,
        budget=budget,
    ).to_pandas()
    took = time.perf_counter() - start
    assert len(out) == n and sorted(out["id"]) == list(range(n)), "rows out != rows in"
    return took, out


def check_full_run(out: Any, n: int, log_dir: Path) -> list[str]:
    """The issue's checks on the full run; each failing one raises."""
    from cascade._logs._read import read_log

    attempts = [e for p in sorted(log_dir.glob("*.jsonl")) for e in read_log(p).events if e["event"] == "attempt"]
    requests = [e for p in sorted(log_dir.glob("*.jsonl")) for e in read_log(p).events if e["event"] == "request"]
    ledger, logged = float(out["cost_usd"].sum()), sum(e["cost_usd"] for e in attempts)
    assert abs(ledger - logged) <= 1e-9 * max(1.0, ledger), (ledger, logged)
    assert sorted(e["request_id"] for e in requests) == sorted(out["request_id"]), "a row answered twice or never"
    cmd = [sys.executable, "-m", "cascade._cli", "stats", "--json", "--per-file", str(log_dir)]
    merged = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    per_file = merged["per_file"]
    for key in ("requests", "attempts", "calls", "accepted"):
        assert merged[key] == sum(f[key] for f in per_file), key
    assert merged["requests"] == n
    return [
        f"rows in = rows out = {n:,}; accepted {int(out['accepted'].sum()):,}; "
        f"errors {int((out['outcome'] == 'error').sum())}",
        f"ledger ${ledger:.6f} = sum of {len(attempts):,} attempts over {len(per_file)} worker logs ${logged:.6f}",
        f"merged stats: {merged['requests']:,} requests, {merged['calls']:,} calls = sum over "
        + ", ".join(f"{Path(f['file']).name}: {f['requests']:,}" for f in per_file),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4000, help="rows per throughput mode (default 4000)")
    ap.add_argument("--full-rows", type=int, default=20_000, help="rows of the checked fault run (0: skip)")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight per worker (default 16)")
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    urls, faults = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=serve, args=(urls, faults), daemon=True)
    server.start()
    base_url = urls.get(timeout=60)
    import ray

    from cascade.ray import JobBudget

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    n, c = args.rows, args.concurrency
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            on_ray(base_url, 400, 2, c, root / "warm-up")  # first job: worker processes, imports
            took: dict[str, float] = {"map": in_process(base_url, n, c, root)}
            start_up: dict[str, float] = {"map": 0.0}
            modes = {"ray 1 worker": (1, False), "ray 2 workers": (2, False), "ray 2 workers + job cap": (2, True)}
            for name, (workers, capped) in modes.items():
                tag = name.replace(" ", "-")
                start_up[name] = on_ray(base_url, 2 * workers, workers, c, root / f"{tag}-start")[0]
                budget = JobBudget(1000.0) if capped else None
                took[name] = on_ray(base_url, n, workers, c, root / tag, budget)[0]
            took["map (again, last)"] = in_process(base_url, n, c, root)  # the machine's drift over the run
            start_up["map (again, last)"] = 0.0
            print(f"{n:,} rows, concurrency {c} per worker, 2 CPUs (python {sys.version.split()[0]})")
            print(f"  {'mode':<26} {'rows/s':>8} {'job s':>7} {'start-up s':>10} {'rows/s after start-up':>22}")
            for name, seconds in took.items():
                steady = n / max(seconds - start_up[name], 1e-9)
                print(f"  {name:<26} {n / seconds:8.1f} {seconds:7.2f} {start_up[name]:10.2f} {steady:22.1f}")
            ray1 = took["ray 1 worker"] - start_up["ray 1 worker"]
            per_row = (ray1 - (took["map"] + took["map (again, last)"]) / 2) / n * 1000
            cap = (took["ray 2 workers + job cap"] - took["ray 2 workers"]) / n * 1000
            print(f"  overhead of the Ray path per row (1 worker after start-up - mean map): {per_row:+.3f} ms")
            print(f"  cost of the job-wide cap per row (2 workers, capped - uncapped):   {cap:+.3f} ms")
            if args.full_rows:
                faults.put(0.05)
                assert urls.get(timeout=30) == "ok"
                seconds, out = on_ray(base_url, args.full_rows, 2, c, root / "full")
                print(f"full run: {args.full_rows:,} rows, 2 workers, 5% faults: {args.full_rows / seconds:.1f} rows/s")
                for line in check_full_run(out, args.full_rows, root / "full"):
                    print(f"  ok: {line}")
    finally:
        ray.shutdown()
        faults.put(None)
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


if __name__ == "__main__":
    main()
