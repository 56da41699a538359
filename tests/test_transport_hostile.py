"""The transport against servers that misbehave at the byte level (tests/hostile.py): the whole exchange
is inside ``total_timeout_s``, a decoded body is bounded like a raw one, and threads that call
``run_sync`` leave no loop, socket or pipe behind."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hostile import RawRequest, answer, completion_body, continue_flood, gzip_bomb, hostile, response, trickle_headers

from cascade import Cascade, OpenAICompatible, RetryPolicy, Rung

MSG = [{"role": "user", "content": "hi"}]
ONCE = RetryPolicy(attempts=1)


def one_rung(provider: Any) -> list[Rung]:
    return [Rung(name="a", provider=provider, model="m", price_in=1, price_out=1, retry=ONCE)]


async def run_once(provider: Any, guard_s: float = 15.0) -> Any:
    """One request, with a guard far above the provider's own deadline so a hang fails instead of hanging."""
    async with Cascade(one_rung(provider), on_exhausted="best_effort") as c:
        return await asyncio.wait_for(c.run(MSG), guard_s)


@pytest.mark.parametrize("behaviour", [continue_flood(0.05), trickle_headers(0.2)], ids=["100-continue", "trickle"])
def test_total_timeout_covers_everything_before_the_body(behaviour: Any) -> None:
    """Endless ``100 Continue`` replies and headers trickled a byte at a time each reset the per-read
    timeout: only a deadline on the whole exchange stops them."""
    with hostile(behaviour) as srv:
        p = OpenAICompatible(srv.base_url, timeout_s=5, total_timeout_s=1)
        result = asyncio.run(run_once(p, guard_s=5))  # the review saw 35.7 s (trickle) and 40 s+ (100s)
    (attempt,) = result.attempts
    assert attempt.reasons == ["timeout"]
    assert "total_timeout_s=1" in attempt.error["message"]


def test_a_gzip_bomb_stops_at_max_response_bytes_without_inflating_it() -> None:
    """200 MB of zeros in ~200 KB of gzip: the decoder must stop at the bound, not inflate a whole
    network chunk (64 KB of it is 64 MB) before looking at the size."""
    with hostile(gzip_bomb(200 * 1024 * 1024)) as srv:
        p = OpenAICompatible(srv.base_url, max_response_bytes=1024 * 1024)
        tracemalloc.start()
        try:
            result = asyncio.run(run_once(p))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.attempts[0].reasons == ["response_too_large"]
    assert "decoded response" in result.attempts[0].error["message"]
    assert peak < 16 * 1024 * 1024  # the bound (1 MB) and a few chunks, not tens of MB


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_compressed_answers_within_the_bound_are_decoded(encoding: str) -> None:
    body = completion_body("compressed fine")
    if encoding == "gzip":
        import gzip

        data, header = gzip.compress(body), "gzip"
    elif encoding == "deflate":
        data, header = zlib.compress(body), "deflate"
    else:
        z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data, header = z.compress(body) + z.flush(), "deflate"
    with hostile(answer(200, data, {"Content-Encoding": header})) as srv:
        result = asyncio.run(run_once(OpenAICompatible(srv.base_url)))
        assert srv.requests[0].headers["accept-encoding"] == "gzip, deflate"
    assert result.output == "compressed fine"


def test_an_encoding_we_did_not_ask_for_is_a_bad_response() -> None:
    async def brotli(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, b"\x0b\x02\x80not-really-brotli", {"Content-Encoding": "br"}))

    with hostile(brotli) as srv:
        result = asyncio.run(run_once(OpenAICompatible(srv.base_url)))
    assert result.attempts[0].reasons == ["bad_response"]
    assert "content-encoding 'br'" in result.attempts[0].error["message"]


# -- file descriptors ----------------------------------------------------------------------------------------
def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """A test server in its own process: every fd this process holds is then the client's."""
    proc = subprocess.Popen([sys.executable, "-m", "cascade.testing", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fd_baseline() -> int:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting file descriptors needs /proc/self/fd (Linux)")
    gc.collect()
    return fds()


def test_short_lived_threads_calling_run_sync_leave_no_fds_behind(remote: str, fd_baseline: int) -> None:
    """The review's 100 threads left 420 fds open (each thread's loop: epoll, self-pipe, sockets),
    416 of them even after close(): a pool kept its loop alive."""
    c = Cascade(one_rung(OpenAICompatible(remote)))
    outputs: list[str | None] = []

    def call() -> None:
        outputs.append(c.run_sync(MSG).output)

    for _ in range(5):  # 5 waves of 20 threads, each thread one run_sync and gone
        threads = [threading.Thread(target=call) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outputs == ["ok"] * 100
    gc.collect()
    assert fds() - fd_baseline <= 8  # the loops of dead threads are gone with their sockets
    c.close()
    gc.collect()
    assert fds() - fd_baseline <= 2


def test_close_releases_the_loops_of_threads_still_alive(remote: str, fd_baseline: int) -> None:
    """Pool threads stay alive between tasks: their loops and connections are released by close()."""
    c = Cascade(one_rung(OpenAICompatible(remote)))
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _: c.run_sync(MSG).output, range(32))) == ["ok"] * 32
        assert fds() - fd_baseline >= 8  # 8 live threads, each with a loop and a connection
        c.close()
        gc.collect()
        assert fds() - fd_baseline <= 2
        # a thread that calls again after close() gets a fresh loop: closing is not breaking
        assert pool.submit(lambda: c.run_sync(MSG).output).result() == "ok"
    c.close()
