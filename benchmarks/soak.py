"""Soak: many requests at high concurrency against a faulty server; nothing lost, nothing overspent,
memory flat.

    .venv/bin/python benchmarks/soak.py --requests 10000 --concurrency 200 --fault-rate 0.1 --seed 1

Starts ``python -m cascade.testing`` in its own process with ``--fault-rate`` (5xx, 429, resets, closed
connections, invalid JSON, missing choices/usage, HTML error pages), runs a two-rung cascade over it with
a per-request budget and a validator that rejects ~10% of the cheap rung's answers, writes the JSONL log,
then checks and prints: every request ends in exactly one ``request`` event (accepted, exhausted or
error), the ledger (sum of results' costs) equals the sum of the logged attempt costs, no request
exceeded its budget, and RSS (sampled during the run) stays flat. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade import Cascade, OpenAICompatible, RetryPolicy, Rung
from cascade._logs._read import read_log
from cascade.validators import check

FAULTS = (
    "server_error,rate_limit,rate_limit_no_header,bad_gateway,unavailable,reset,close,"
    "invalid_json,no_choices,no_usage,html"
)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE / 1e6
    except OSError:
        return 0.0


@contextlib.contextmanager
def fault_server(fault_rate: float, seed: int, faults: str = FAULTS) -> Iterator[str]:
    """``python -m cascade.testing`` in its own process; yields its OpenAI-style base URL."""
    cmd = [sys.executable, "-m", "cascade.testing", "--port", "0", "--content", '{"ok": true}']
    if fault_rate:
        cmd += ["--fault-rate", str(fault_rate), "--seed", str(seed), "--faults", faults]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        if not url.startswith("http://"):
            raise RuntimeError(f"the test server did not start: {url!r}")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Report:
    requests: int
    seconds: float
    outcomes: Counter[str]
    reasons: Counter[str]
    ledger_usd: float
    logged_attempts_usd: float
    logged_requests_usd: float
    over_budget: int
    request_events: int
    ids_not_once: int
    bad_lines: int
    retries: int
    rss: list[tuple[int, float]] = field(default_factory=list)  # (requests done, MB)

    @property
    def rss_start(self) -> float:
        return self.rss[0][1]

    @property
    def rss_peak(self) -> float:
        return max(mb for _, mb in self.rss)

    @property
    def rss_end(self) -> float:
        return self.rss[-1][1]

    @property
    def rss_growth_after_warmup(self) -> float:
        """RSS growth from a quarter of the run to the end: what a leak per request would show."""
        warm = next((mb for done, mb in self.rss if done >= self.requests // 4), self.rss_start)
        return self.rss_end - warm

    def failures(self) -> list[str]:
        out = []
        if self.request_events != self.requests or self.ids_not_once:
            out.append(f"{self.request_events} request events for {self.requests} requests, "
                       f"{self.ids_not_once} ids not logged exactly once")  # fmt: skip
        if sum(self.outcomes.values()) != self.requests or set(self.outcomes) - {"accepted", "exhausted", "error"}:
            out.append(f"outcomes {dict(self.outcomes)}")
        if not math.isclose(self.ledger_usd, self.logged_attempts_usd, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"ledger ${self.ledger_usd!r} != logged attempts ${self.logged_attempts_usd!r}")
        if not math.isclose(self.ledger_usd, self.logged_requests_usd, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"ledger ${self.ledger_usd!r} != logged requests ${self.logged_requests_usd!r}")
        if self.over_budget:
            out.append(f"{self.over_budget} requests over budget")
        if self.bad_lines:
            out.append(f"{self.bad_lines} unreadable log lines")
        return out

    def lines(self) -> list[str]:
        ok = self.outcomes["accepted"]
        return [
            f"requests        {self.requests} in {self.seconds:.1f} s ({self.requests / self.seconds:.0f}/s)",
            f"outcomes        {dict(self.outcomes)} (accepted {100 * ok / self.requests:.2f}%)",
            f"retries         {self.retries} (transient faults absorbed on the same rung)",
            f"failure reasons {dict(self.reasons.most_common())} (attempts that escalated or failed)",
            f"request events  {self.request_events} (ids not exactly once: {self.ids_not_once}); "
            f"unreadable lines: {self.bad_lines}",
            f"ledger          ${self.ledger_usd:.6f} = attempts in log ${self.logged_attempts_usd:.6f} "
            f"= requests in log ${self.logged_requests_usd:.6f}",
            f"over budget     {self.over_budget}",
            f"RSS MB          start {self.rss_start:.1f} / peak {self.rss_peak:.1f} / end {self.rss_end:.1f} "
            f"(growth after warm-up {self.rss_growth_after_warmup:+.1f})",
        ]


async def soak(base_url: str, requests: int, concurrency: int, log: Path, budget_usd: float = 0.01) -> Report:
    provider = OpenAICompatible(base_url, timeout_s=10, max_connections=concurrency)
    retry = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.1)

    @check(name="picky")
    def picky(c: Any) -> bool:  # rejects ~10% of the cheap rung's answers (deterministic per prompt)
        return c.rung != "small" or zlib.crc32(str(c.messages[-1]["content"]).encode()) % 10 != 0

    rungs = [
        Rung(name="small", provider=provider, model="small-m", price_in=0.15, price_out=0.6, retry=retry),
        Rung(name="large", provider=provider, model="large-m", price_in=2.5, price_out=10, retry=retry,
             params={"max_tokens": 64}),
    ]  # fmt: skip
    items = ({"messages": [{"role": "user", "content": f"soak {i}"}], "metadata": {"i": i}} for i in range(requests))
    outcomes: Counter[str] = Counter()
    ledger = 0.0
    over = 0
    rss = [(0, rss_mb())]
    done = 0
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.25)
            rss.append((done, rss_mb()))

    sampler = asyncio.ensure_future(sample())
    cascade = Cascade(rungs, validators=picky, budget_usd=budget_usd, log=log, on_exhausted="best_effort")
    try:
        async for _, result in cascade.imap(items, concurrency=concurrency):  # results are not kept: flat memory
            done += 1
            outcomes[result.outcome] += 1
            ledger += result.cost_usd
            over += result.cost_usd > budget_usd + 1e-12
    finally:
        sampler.cancel()
        await cascade.aclose()
    seconds = time.perf_counter() - started
    rss.append((done, rss_mb()))

    read = read_log(log)
    ids = Counter(e["request_id"] for e in read.events if e["event"] == "request")
    reasons = Counter(r for e in read.events if e["event"] == "attempt" for r in e["reasons"])
    return Report(
        requests=requests,
        seconds=seconds,
        outcomes=outcomes,
        reasons=reasons,
        ledger_usd=ledger,
        logged_attempts_usd=math.fsum(e["cost_usd"] for e in read.events if e["event"] == "attempt"),
        logged_requests_usd=math.fsum(e["cost_usd"] for e in read.events if e["event"] == "request"),
        over_budget=over,
        request_events=sum(ids.values()),
        ids_not_once=sum(1 for n in ids.values() if n != 1) + max(0, requests - len(ids)),
        bad_lines=len(read.bad_lines),
        retries=sum(e["retries"] for e in read.events if e["event"] == "attempt"),
        rss=rss,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.01, help="budget_usd per request")
    parser.add_argument("--log", type=Path, default=None, help="JSONL log path (default: a temporary file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "soak.jsonl"
        with fault_server(args.fault_rate, args.seed) as url:
            report = asyncio.run(soak(url, args.requests, args.concurrency, log, args.budget))
    print(f"soak: {args.requests} requests, concurrency {args.concurrency}, fault rate {args.fault_rate}, "
          f"seed {args.seed}")  # fmt: skip
    for line in report.lines():
        print("  " + line)
    problems = report.failures()
    print("FAILED: " + "; ".join(problems) if problems else "OK: every check passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
