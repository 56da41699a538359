"""Soak: many requests at high concurrency against a faulty server; nothing lost, nothing overspent,
memory flat.

    .venv/bin/python benchmarks/soak.py --requests 10000 --concurrency 200 --fault-rate 0.1 --seed 1

Starts ``python -m cascade.testing`` in its own process with ``--fault-rate`` (5xx, 429, resets, closed
connections, invalid JSON, missing choices/usage, HTML error pages), runs a two-rung cascade over it with
a per-request budget and a validator that rejects ~10% of the cheap rung's answers, writes the JSONL log,
then checks and prints: every request ends in exactly one ``request`` event (accepted, exhausted or
error), the ledger (sum of results' costs) equals the sum of the logged attempt costs, no request
exceeded its budget, and RSS (sampled during the run) stays flat. Exits 1 if any check fails.

The hostile variant adds what the library must survive without losing a result:

    .venv/bin/python benchmarks/soak.py --requests 10000 --concurrency 200 --fault-rate 0.1 --seed 1 \
        --surrogate-rate 0.01 --raise-rate 0.01 --rotate-every 1000 --fsize-limit 262144

``--surrogate-rate``: a lone surrogate (``\ud800``) in that share of answers, logged with
``log_content="full"``. ``--raise-rate``: a custom provider (wrapping the HTTP one) raises ``KeyError``
in that share of calls. ``--rotate-every N``: an external tool renames the log away every N lines
(rename rotation), or as soon as the file is full. ``--fsize-limit BYTES``: a full disk under the log,
made with ``RLIMIT_FSIZE`` (no file of this process may grow past BYTES; ``SIGXFSZ`` ignored, so a write
past it fails with EFBIG): a tiny tmpfs needs mount rights, a file-size limit does not. Then: results =
inputs, request events = inputs minus the request lines lost (each counted on its result's
``log_errors``), the ledger = the sum of the results' attempts, and the open fds before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import math
import os
import random
import resource
import signal
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

from cascade import Cascade, Completion, CompletionRequest, OpenAICompatible, RetryPolicy, Rung
from cascade._logs._read import LogRead, iter_lines, log_files
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


def open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; -1 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


class Chaos:
    """A custom provider over the HTTP one: raises ``KeyError`` in ``raise_rate`` of calls and puts a
    lone surrogate in ``surrogate_rate`` of answers (deterministic per seed)."""

    def __init__(self, inner: OpenAICompatible, surrogate_rate: float, raise_rate: float, seed: int) -> None:
        self.inner = inner
        self.name = "chaos"
        self.surrogate_rate = surrogate_rate
        self.raise_rate = raise_rate
        self.random = random.Random(seed)

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.random.random() < self.raise_rate:
            raise KeyError("chaos: a custom provider's bug")
        out = await self.inner.complete(request)
        if self.random.random() < self.surrogate_rate:
            out = dataclasses.replace(out, text=out.text[:-1] + ', "note": "\ud800"}')
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Hostile:
    """What the hostile variant adds (all off by default)."""

    surrogate_rate: float = 0.0
    raise_rate: float = 0.0
    rotate_every: int = 0
    fsize_limit: int | None = None


@contextlib.contextmanager
def file_size_limit(limit: int | None) -> Iterator[None]:
    """A full disk for this process's files: RLIMIT_FSIZE (soft), SIGXFSZ ignored; restored after."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


async def rotate(log: Path, every: int, rotated: list[str], full_at: int | None = None) -> None:
    """An external tool renaming the log away every ``every`` lines (as logrotate's default does), or
    when it reached ``full_at`` bytes (the disk is full: rotating it away frees the space)."""
    offset = lines = 0
    while True:
        await asyncio.sleep(0.02)
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            continue
        offset += len(chunk)
        lines += chunk.count(b"\n")
        if lines >= every or (full_at is not None and offset >= full_at - 1024):
            target = f"{log}.{len(rotated) + 1}"
            os.rename(log, target)
            rotated.append(target)
            offset = lines = 0


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
    results: int = 0
    lost_lines: int = 0  # counted by the engine (result.log_errors)
    lost_request_lines: int = 0  # requests with no request event, each with a counted loss
    uncounted_missing: int = 0  # requests with no request event and no counted loss: must be 0
    attempts_usd: float = 0.0  # sum of every result's attempts' costs
    rotations: int = 0
    fds_before: int = -1
    fds_after: int = -1
    hostile: Hostile = field(default_factory=Hostile)

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
        if self.results != self.requests:
            out.append(f"{self.results} results for {self.requests} inputs")
        if self.request_events != self.requests - self.lost_request_lines or self.ids_not_once:
            out.append(f"{self.request_events} request events for {self.requests} requests "
                       f"({self.lost_request_lines} lost and counted), "
                       f"{self.ids_not_once} ids not logged exactly once")  # fmt: skip
        if self.uncounted_missing:
            out.append(f"{self.uncounted_missing} request events missing without a counted loss")
        if not math.isclose(self.ledger_usd, self.attempts_usd, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"ledger ${self.ledger_usd!r} != sum of attempts ${self.attempts_usd!r}")
        if self.fds_before >= 0 and self.fds_after > self.fds_before + 2:
            out.append(f"fds {self.fds_before} before, {self.fds_after} after")
        if self.lost_lines:  # the log is incomplete by design here: the checks against it do not apply
            return out
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
            f"results         {self.results} = inputs {self.requests}",
            f"request events  {self.request_events} = inputs {self.requests} - lost request lines "
            f"{self.lost_request_lines} (ids not exactly once: {self.ids_not_once}; missing without a counted "
            f"loss: {self.uncounted_missing}); unreadable lines: {self.bad_lines}",
            f"lost lines      {self.lost_lines} counted in results' log_errors (rotations: {self.rotations})",
            f"ledger          ${self.ledger_usd:.6f} = sum of attempts ${self.attempts_usd:.6f}",
            f"fds             {self.fds_before} before, {self.fds_after} after",
            f"ledger          ${self.ledger_usd:.6f} = attempts in log ${self.logged_attempts_usd:.6f} "
            f"= requests in log ${self.logged_requests_usd:.6f}",
            f"over budget     {self.over_budget}",
            f"RSS MB          start {self.rss_start:.1f} / peak {self.rss_peak:.1f} / end {self.rss_end:.1f} "
            f"(growth after warm-up {self.rss_growth_after_warmup:+.1f})",
        ]


async def soak(
    base_url: str,
    requests: int,
    concurrency: int,
    log: Path,
    budget_usd: float = 0.01,
    hostile: Hostile | None = None,
    seed: int = 1,
) -> Report:
    hostile = hostile or Hostile()
    gc.collect()
    fds_before = open_fds()
    http = OpenAICompatible(base_url, timeout_s=10, max_connections=concurrency)
    provider: Any = http
    if hostile.surrogate_rate or hostile.raise_rate:
        provider = Chaos(http, hostile.surrogate_rate, hostile.raise_rate, seed)
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
    attempts_usd = 0.0
    over = 0
    results = 0
    lost = 0
    lossy: set[str] = set()  # request ids with a counted lost line
    rss = [(0, rss_mb())]
    done = 0
    started = time.perf_counter()

    async def sample() -> None:
        while True:
            await asyncio.sleep(0.25)
            rss.append((done, rss_mb()))

    sampler = asyncio.ensure_future(sample())
    rotated: list[str] = []
    rotator = (
        asyncio.ensure_future(rotate(log, hostile.rotate_every, rotated, hostile.fsize_limit))
        if hostile.rotate_every
        else None
    )
    content = "full" if hostile.surrogate_rate else "none"
    cascade = Cascade(
        rungs, validators=picky, budget_usd=budget_usd, log=log, on_exhausted="best_effort", log_content=content
    )
    try:
        with file_size_limit(hostile.fsize_limit):
            async for _, result in cascade.imap(items, concurrency=concurrency):  # not kept: flat memory
                done += 1
                results += 1
                outcomes[result.outcome] += 1
                ledger += result.cost_usd
                attempts_usd += math.fsum(a.cost_usd for a in result.attempts)
                over += result.cost_usd > budget_usd + 1e-12
                lost += result.log_errors
                if result.log_errors:
                    lossy.add(result.request_id)
    finally:
        sampler.cancel()
        if rotator is not None:
            rotator.cancel()
        await cascade.aclose()
    seconds = time.perf_counter() - started
    rss.append((done, rss_mb()))
    gc.collect()
    fds_after = open_fds()

    read = LogRead()
    for name in log_files(str(log)):
        read.events += [e for _, e in iter_lines(name, read.bad_lines.append)]
    ids = Counter(e["request_id"] for e in read.events if e["event"] == "request")
    reasons = Counter(r for e in read.events if e["event"] == "attempt" for r in e["reasons"])
    missing = requests - len(ids)
    lost_request_lines = len(lossy - set(ids))
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
        ids_not_once=sum(1 for n in ids.values() if n != 1) + max(0, missing - lost_request_lines),
        bad_lines=len(read.bad_lines),
        retries=sum(e["retries"] for e in read.events if e["event"] == "attempt"),
        rss=rss,
        results=results,
        lost_lines=lost,
        lost_request_lines=lost_request_lines,
        uncounted_missing=max(0, missing - lost_request_lines),
        attempts_usd=attempts_usd,
        rotations=len(rotated),
        fds_before=fds_before,
        fds_after=fds_after,
        hostile=hostile,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.01, help="budget_usd per request")
    parser.add_argument("--log", type=Path, default=None, help="JSONL log path (default: a temporary file)")
    parser.add_argument("--surrogate-rate", type=float, default=0.0, help="share of answers with a lone surrogate")
    parser.add_argument("--raise-rate", type=float, default=0.0, help="share of calls a custom provider raises in")
    parser.add_argument("--rotate-every", type=int, default=0, help="rename the log away every N lines")
    parser.add_argument("--fsize-limit", type=int, default=None, help="RLIMIT_FSIZE bytes: a full disk under the log")
    args = parser.parse_args(argv)
    hostile = Hostile(args.surrogate_rate, args.raise_rate, args.rotate_every, args.fsize_limit)
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "soak.jsonl"
        with fault_server(args.fault_rate, args.seed) as url:
            report = asyncio.run(soak(url, args.requests, args.concurrency, log, args.budget, hostile, args.seed))
    print(f"soak: {args.requests} requests, concurrency {args.concurrency}, fault rate {args.fault_rate}, "
          f"seed {args.seed}; {hostile}")  # fmt: skip
    for line in report.lines():
        print("  " + line)
    problems = report.failures()
    print("FAILED: " + "; ".join(problems) if problems else "OK: every check passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
