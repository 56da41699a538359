"""Two gateway processes sharing one real ``redis-server``: a session escalated on one replica stays
escalated on the other, and a key's daily cap holds across both under concurrent load.

Needs ``redis-server`` (Debian's package; ``make test-deps`` installs it) and the ``redis`` client
(``[gateway]`` extra); skipped with the reason otherwise. Every process started here is killed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from cascade.gateway import hash_key, new_key
from cascade.testing import Reply, TestServer

redis = pytest.importorskip("redis", reason="the replica tests need the redis client: pip install -e '.[gateway]'")
pytest.importorskip("starlette", reason="the replica tests need the [gateway] extra")

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]
KEY = new_key()
CAP = 0.25
CONFIG = """
[gateway]
sticky_ttl_s = 600
request_reserve_usd = 0.1

[[gateway.keys]]
name = "team-a"
sha256 = "{sha}"
daily_usd = {cap}

[cascades.tickets]
checks = {{ json_schema = {{ type = "object" }} }}
breaker = {{ failures = 2, window_s = 60, cooldown_s = 60 }}

[[cascades.tickets.rungs]]
name = "small"
base_url = "{url}"
model = "small-m"
price_in = 1000
price_out = 1000

[[cascades.tickets.rungs]]
name = "large"
base_url = "{url}"
model = "large-m"
price_in = 1000
price_out = 1000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, what: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"{what} exited with {proc.returncode}: {out[-2000:]}")
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.05)
    pytest.fail(f"{what} did not come up in {timeout_s}s")


def start(stack: ExitStack, cmd: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def kill() -> None:
        proc.kill()
        proc.wait(10)

    stack.callback(kill)
    return proc


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test-deps installs Debian's redis-server)")
    port = free_port()
    with ExitStack() as stack:
        proc = start(stack, [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        client = redis.Redis(port=port)
        wait_until(client.ping, "redis-server", proc)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def _replicas(
    _session_server: TestServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two `cascade serve` processes on the same ladder and the same Redis (started once per module)."""
    config = tmp_path_factory.mktemp("replicas") / "gateway.toml"
    config.write_text(CONFIG.format(sha=hash_key(KEY), cap=CAP, url=_session_server.base_url))
    urls = []
    with ExitStack() as stack:
        procs = []
        for _ in range(2):
            port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "cascade._cli",
                "serve",
                str(config),
                "--port",
                str(port),
                "--redis",
                redis_url,
            ]
            procs.append(start(stack, [*cmd, "--log-level", "warning"]))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_until(lambda u=url: httpx.get(f"{u}/readyz").status_code == 200, f"gateway {url}", proc)
        yield urls


@pytest.fixture
def replicas(server: TestServer, _replicas: list[str], redis_url: str) -> list[str]:
    """The two replicas, with an empty Redis (no sessions, nothing spent) and a fresh test server."""
    redis.Redis.from_url(redis_url).flushdb()
    return _replicas


def post(url: str, messages: list[dict[str, str]], **headers: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}", **headers}
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "cascade/tickets", "messages": messages},
        headers=headers,
        timeout=30,
    )


def test_a_session_escalated_on_one_replica_stays_escalated_on_the_other(
    server: TestServer, replicas: list[str]
) -> None:
    server.script("small-m", Reply(content="not json"))
    server.default(Reply(content="{}"))
    a, b = replicas
    session = {"x-cascade-session": "conversation-42"}
    first = post(a, MSG, **session)
    second = post(b, [{"role": "user", "content": "and the refund?"}], **session)
    other = post(b, [{"role": "user", "content": "and the refund?"}], **{"x-cascade-session": "conversation-43"})
    assert first.json()["model"] == "large-m" and first.headers["x-cascade-escalations"] == "1"
    attempts = second.json()["cascade"]["attempts"]
    assert [(x["rung"], x["outcome"], x["reasons"]) for x in attempts] == [
        ("small", "skipped", ["sticky"]),
        ("large", "accepted", []),
    ]
    assert other.json()["model"] == "small-m"
    assert [r.model for r in server.requests] == ["small-m", "large-m", "large-m", "small-m"]


def test_a_daily_cap_holds_across_replicas_under_concurrent_load(
    server: TestServer, replicas: list[str], redis_url: str
) -> None:
    server.default(Reply(content="{}", tokens_in=20, tokens_out=10, delay_s=0.05))
    cost = (20 + 10) * 1000 / 1e6

    async def burst() -> list[httpx.Response]:
        body = {"model": "cascade/tickets", "messages": MSG}
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
            calls = [client.post(f"{replicas[i % 2]}/v1/chat/completions", json=body) for i in range(40)]
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    for url in replicas * 5:  # then one at a time, alternating replicas, until both refuse
        responses.append(post(url, MSG))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    [account] = store.keys("cascade:spend:team-a:*")
    spent = int(store.get(account)) / 1e9
    assert spent <= CAP and spent == pytest.approx(len(ok) * cost)
    assert sum(float(r.headers["x-cascade-cost-usd"]) for r in ok) == pytest.approx(spent)
    assert {r.headers["x-cascade-answered-by"] for r in ok} == {"small"}
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {(429, "spend_cap_exceeded")}
    assert len(server.requests) == len(ok)  # nothing past the cap reached a model
    assert len(ok) >= 2  # both replicas served within the cap before it ran out


def test_a_circuit_opened_on_one_replica_is_skipped_on_the_other(
    server: TestServer, replicas: list[str], redis_url: str
) -> None:
    """Last in the module: replica A's own breaker stays open for its cool-down afterwards."""
    server.default(Reply(status=401), model="small-m")
    server.default(Reply(content="{}"), model="large-m")
    a, b = replicas
    for _ in range(2):  # two failures on A open its circuit on small, which A publishes
        assert post(a, MSG).json()["cascade"]["attempts"][0]["reasons"] == ["auth_failed"]
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + 10
    while not store.exists("cascade:health:cascade/tickets:small:breaker") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert 0 < store.ttl("cascade:health:cascade/tickets:small:breaker") <= 60  # for the cool-down only
    server.reset()
    server.default(Reply(content="{}"))
    answer = post(b, MSG).json()  # B never saw small fail, and skips it without a call
    assert [(x["rung"], x["outcome"], x["reasons"]) for x in answer["cascade"]["attempts"]] == [
        ("small", "skipped", ["rung_cooling_down"]),
        ("large", "accepted", []),
    ]
    assert [r.model for r in server.requests] == ["large-m"]
