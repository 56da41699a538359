"""What the benchmarks share: the loopback test server in separate processes, a closed-loop driver, and an
in-memory provider with its answer and schema.

Not part of the package. The server is ``python -m cascade.testing`` (an aiohttp server answering
instantly); with ``workers > 1`` several server processes share one port through SO_REUSEPORT, so that
at high concurrency the client process, not the server, is what is measured.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cascade import Completion, CompletionRequest

CONTENT = '{"label": "spam", "score": 0.9}'
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}, "score": {"type": "number"}},
    "required": ["label"],
}


class Instant:
    """A provider that answers every request at once, with usage, from memory (no sockets: what is
    left to measure is the router's own work). ``yield_each`` gives the loop a turn per call, as real
    I/O would, so that many requests are in flight at once."""

    name = "instant"

    def __init__(self, yield_each: bool = False) -> None:
        self.yield_each = yield_each

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.yield_each:
            await asyncio.sleep(0)
        return Completion(text=CONTENT, tokens_in=12, tokens_out=9, finish_reason="stop", model=request.model)

    async def aclose(self) -> None:
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Servers:
    """``workers`` processes of ``python -m cascade.testing`` on one port (SO_REUSEPORT when > 1)."""

    def __init__(self, workers: int = 1, content: str = "ok") -> None:
        self.workers = workers
        self.content = content
        self.procs: list[subprocess.Popen[str]] = []
        self.base_url = ""

    def __enter__(self) -> Servers:
        port = free_port()
        cmd = [sys.executable, "-m", "cascade.testing", "--port", str(port), "--content", self.content]
        if self.workers > 1:
            cmd.append("--reuse-port")
        for _ in range(self.workers):
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            self.procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("http"):
                self.__exit__()
                raise RuntimeError(f"test server did not start: {cmd}")
            self.base_url = line
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def cpu_seconds(self) -> float:
        """User + system CPU of all server processes so far (Linux /proc), to tell if they saturate."""
        total = 0
        for proc in self.procs:
            try:
                with open(f"/proc/{proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                return float("nan")
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return total / _CLK_TCK


@dataclass
class Measure:
    requests: int
    wall_s: float
    cpu_s: float
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def cpu_us(self) -> float:
        """Client process CPU (all threads) per request, microseconds."""
        return self.cpu_s / self.requests * 1e6

    @property
    def server_busy(self) -> float:
        """Server CPU over wall time: near ``workers`` means the server is the bottleneck."""
        return self.server_cpu_s / self.wall_s


async def drive(call: Callable[[], Awaitable[object]], total: int, concurrency: int, expect: object) -> int:
    """Run ``total`` calls with ``concurrency`` in flight; returns how many answered ``expect``."""
    remaining = total
    good = 0

    async def worker() -> None:
        nonlocal remaining, good
        while remaining > 0:
            remaining -= 1
            if await call() == expect:
                good += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return good


async def measure(
    call: Callable[[], Awaitable[object]], total: int, concurrency: int, expect: object, servers: Servers
) -> Measure:
    """Time ``total`` calls: wall clock, this process's CPU (``time.process_time``) and the servers' CPU."""
    s0, c0, w0 = servers.cpu_seconds(), time.process_time(), time.perf_counter()
    good = await drive(call, total, concurrency, expect)
    wall, cpu, srv = time.perf_counter() - w0, time.process_time() - c0, servers.cpu_seconds() - s0
    if good != total:
        raise RuntimeError(f"{total - good} of {total} calls returned something other than {expect!r}")
    return Measure(total, wall, cpu, srv)
