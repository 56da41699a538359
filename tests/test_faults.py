"""The fault matrix: every way a provider can fail, through the real test server, and what the engine does
about it (retry on the same rung, escalate, or raise), with the reason code in the result and in the log."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checks import unchecked_on_purpose

from cascade import Anthropic, CallerError, Cascade, Ladder, OpenAICompatible, RetryPolicy, Rung
from cascade.testing import Reply, TestServer

pytestmark = unchecked_on_purpose  # every ladder here escalates on faults alone: its lower rung has no check

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]
FAST = RetryPolicy(attempts=3, initial_wait_s=0.0, max_wait_s=0.01)


def rungs(small: Any, large: Any, retry: RetryPolicy = FAST) -> Ladder:
    return Ladder(
        [
            Rung(name="small", provider=small, model="small-m", price_in=0.1, price_out=0.2, retry=retry),
            Rung(name="large", provider=large, model="large-m", price_in=2.0, price_out=8.0, retry=retry),
        ]
    )


def run(server: TestServer, tmp_path: Path, small: Any = None, retry: RetryPolicy = FAST, **kw: Any) -> Any:
    """One request through a two-rung ladder; returns (result, attempt events, request event)."""
    p = OpenAICompatible(server.base_url, timeout_s=5)
    log = tmp_path / "log.jsonl"
    with Cascade(rungs(small or p, p, retry), log=log, on_exhausted="best_effort", **kw) as cascade:
        result = cascade.run_sync(MSG)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    attempts = [e for e in events if e["event"] == "attempt"]
    (request,) = [e for e in events if e["event"] == "request"]
    return result, attempts, request


def assert_escalated(result: Any, attempts: list[dict[str, Any]], reason: str, calls: int) -> None:
    """The small rung failed with ``reason`` after ``calls`` HTTP calls; the large rung answered."""
    first = result.attempts[0]
    assert (first.outcome, first.reasons, first.calls) == ("error", [reason], calls)
    assert first.error is not None and first.error["reason"] == reason
    assert attempts[0]["outcome"] == "error" and attempts[0]["reasons"] == [reason]
    assert attempts[0]["error"]["reason"] == reason and attempts[0]["calls"] == calls
    assert result.accepted and result.answered_by == "large"


# -- HTTP status faults ---------------------------------------------------------------------------------
def test_429_with_retry_after_is_retried_and_succeeds(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(status=429, headers={"Retry-After": "0"}), Reply(content="fine"))
    result, attempts, request = run(server, tmp_path)
    assert result.answered_by == "small" and result.attempts[0].retries == 1
    assert attempts[0]["outcome"] == "accepted" and attempts[0]["retries"] == 1 and attempts[0]["calls"] == 2
    assert request["outcome"] == "accepted" and request["reason"] is None


def test_429_without_retry_after_is_retried_with_backoff(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(fault="rate_limit_no_header"), Reply(fault="rate_limit_no_header"), Reply())
    result, attempts, _ = run(server, tmp_path)
    assert result.answered_by == "small" and attempts[0]["retries"] == 2


def test_429_retries_exhausted_escalate_with_rate_limited(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", *[Reply(fault="rate_limit")] * 3)
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "rate_limited", calls=3)


def test_retry_after_longer_than_the_cap_escalates_at_once(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(status=429, headers={"Retry-After": "3600"}))
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "rate_limited", calls=1)
    assert result.attempts[0].error["status"] == 429


@pytest.mark.parametrize("fault", ["server_error", "bad_gateway", "unavailable"])
def test_5xx_retried_then_escalated_with_server_error(server: TestServer, tmp_path: Path, fault: str) -> None:
    server.script("small-m", *[Reply(fault=fault)] * 3)
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "server_error", calls=3)


@pytest.mark.parametrize("fault", ["server_error", "bad_gateway", "unavailable"])
def test_one_5xx_is_absorbed_by_a_retry(server: TestServer, tmp_path: Path, fault: str) -> None:
    server.script("small-m", Reply(fault=fault), Reply(content="fine"))
    result, attempts, _ = run(server, tmp_path)
    assert result.answered_by == "small" and result.output == "fine" and attempts[0]["retries"] == 1


def test_html_error_page_is_a_server_error_with_the_page_start_in_the_message(
    server: TestServer, tmp_path: Path
) -> None:
    server.script("small-m", *[Reply(fault="html")] * 3)
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "server_error", calls=3)
    assert "502 Bad Gateway" in attempts[0]["error"]["message"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(status=401), "auth_failed"),
        (Reply(status=403), "auth_failed"),
        (Reply(status=404), "model_not_found"),
        (Reply(status=400, error={"message": "maximum context length is 8192 tokens"}), "context_length_exceeded"),
        (Reply(status=400, error={"message": "rejected", "code": "content_policy_violation"}), "content_policy"),
    ],
)
def test_rung_fatal_statuses_escalate_without_retry(
    server: TestServer, tmp_path: Path, reply: Reply, reason: str
) -> None:
    server.script("small-m", reply)
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, reason, calls=1)


def test_top_rung_down_exhausts_with_the_reason_or_raises(server: TestServer, tmp_path: Path) -> None:
    server.default(Reply(fault="unavailable"))
    result, attempts, request = run(server, tmp_path)
    assert not result.accepted and result.outcome == "exhausted" and result.output is None
    assert [a["reasons"] for a in attempts] == [["server_error"], ["server_error"]]
    assert request["outcome"] == "exhausted" and request["reason"] == "server_error"


# -- transport faults -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_retried_then_escalated(server: TestServer, tmp_path: Path) -> None:
    dead = OpenAICompatible(f"http://127.0.0.1:{free_port()}/v1")
    result, attempts, _ = run(server, tmp_path, small=dead)
    assert_escalated(result, attempts, "connection_error", calls=3)
    assert "ConnectError" in attempts[0]["error"]["message"]


@pytest.fixture
def backlog_full_port() -> Iterator[int]:
    """A port whose accept queue is full and never drained: a new connection stalls in the handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(8):  # fill the accept queue (its length is backlog + 1 on Linux)
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
        finally:
            fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()


def test_connect_timeout_is_a_timeout_and_escalates(server: TestServer, tmp_path: Path, backlog_full_port: int) -> None:
    stalled = OpenAICompatible(f"http://127.0.0.1:{backlog_full_port}/v1", connect_timeout_s=0.2, timeout_s=0.2)
    result, attempts, _ = run(server, tmp_path, small=stalled, retry=RetryPolicy(attempts=1))
    first = result.attempts[0]
    # A SYN to a full queue is dropped (connect timeout) on most kernels; some refuse instead.
    assert first.reasons in (["timeout"], ["connection_error"]) and first.outcome == "error"
    assert attempts[0]["reasons"] == first.reasons and result.answered_by == "large"
    if first.reasons == ["timeout"]:
        assert "ConnectTimeout" in attempts[0]["error"]["message"]


def test_read_timeout_is_retried_then_escalated(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", *[Reply(fault="timeout")] * 2)
    hanging = OpenAICompatible(server.base_url, timeout_s=0.2)
    result, attempts, _ = run(server, tmp_path, small=hanging, retry=RetryPolicy(attempts=2, initial_wait_s=0))
    assert_escalated(result, attempts, "timeout", calls=2)
    assert "ReadTimeout" in attempts[0]["error"]["message"]


@pytest.mark.parametrize("fault", ["reset", "close"])
def test_connection_dropped_mid_answer_is_retried(server: TestServer, tmp_path: Path, fault: str) -> None:
    server.script("small-m", Reply(fault=fault), Reply(content="fine"))
    result, attempts, _ = run(server, tmp_path)
    assert result.answered_by == "small" and result.output == "fine" and attempts[0]["retries"] == 1


def test_reset_every_time_escalates_with_connection_error(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", *[Reply(fault="reset")] * 3)
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "connection_error", calls=3)


def test_slow_trickle_within_the_read_timeout_is_a_normal_answer(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content="x" * 40, fault="trickle", trickle_bytes=64, trickle_pause_s=0.01))
    result, attempts, _ = run(server, tmp_path)
    assert result.answered_by == "small" and result.output == "x" * 40 and attempts[0]["calls"] == 1


def test_slow_trickle_past_the_total_deadline_is_a_timeout(server: TestServer, tmp_path: Path) -> None:
    # Every gap (20 ms) is far below the read timeout: only a deadline on the whole call stops it.
    server.script("small-m", Reply(content="x" * 400, fault="trickle", trickle_bytes=8, trickle_pause_s=0.02))
    slow = OpenAICompatible(server.base_url, timeout_s=5, total_timeout_s=0.3)
    result, attempts, _ = run(server, tmp_path, small=slow, retry=RetryPolicy(attempts=1))
    assert_escalated(result, attempts, "timeout", calls=1)
    assert "total_timeout_s=0.3" in attempts[0]["error"]["message"]


# -- bad 200s -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["invalid_json", "no_choices"])
def test_unusable_200_escalates_at_once_with_bad_response_and_is_charged(
    server: TestServer, tmp_path: Path, fault: str
) -> None:
    server.script("small-m", Reply(fault=fault))
    result, attempts, _ = run(server, tmp_path)
    assert_escalated(result, attempts, "bad_response", calls=1)
    assert attempts[0]["cost_usd"] > 0  # a 200 we could not use was probably billed: its bound is charged


def test_missing_usage_is_accepted_and_charged_an_upper_bound(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content="fine", fault="no_usage"))
    result, attempts, request = run(server, tmp_path)
    assert result.answered_by == "small" and result.output == "fine"
    assert attempts[0]["tokens_in"] >= len(MSG[0]["content"]) and attempts[0]["cost_usd"] > 0
    assert request["cost_usd"] == attempts[0]["cost_usd"]


def test_finish_reason_length_escalates_with_truncated(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content='{"label": "bil', finish_reason="length"))
    result, attempts, _ = run(server, tmp_path)
    assert result.attempts[0].outcome == "escalated" and result.attempts[0].reasons == ["truncated"]
    assert attempts[0]["reasons"] == ["truncated"] and attempts[0]["verdicts"][0]["validator"] == "engine"
    assert result.answered_by == "large"


def test_anthropic_bad_200s_are_bad_responses(server: TestServer, tmp_path: Path) -> None:
    p = Anthropic(server.url, api_key_env=None)
    server.script("small-m", Reply(fault="no_choices"))
    server.script("large-m", Reply(fault="invalid_json"))
    log = tmp_path / "a.jsonl"
    with Cascade(rungs(p, p), log=log, on_exhausted="best_effort") as cascade:
        result = cascade.run_sync(MSG)
    assert [a.reasons for a in result.attempts] == [["bad_response"], ["bad_response"]]
    assert result.outcome == "exhausted"


def test_bad_request_raises_without_escalating(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(status=400, error={"message": "unknown parameter 'foo'"}))
    log = tmp_path / "log.jsonl"
    provider = OpenAICompatible(server.base_url)
    with Cascade(rungs(provider, provider), log=log) as cascade, pytest.raises(CallerError):
        cascade.run_sync(MSG)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["attempt", "request"]
    assert events[0]["reasons"] == ["bad_request"] and events[1]["outcome"] == "error"
    assert [r.model for r in server.requests] == ["small-m"]


# -- the 10 MB body, with bounded memory ----------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_server() -> Iterator[str]:
    """A test server in its own process answering every request with the ~10 MB fault (so the server's own
    allocations do not count against this process's memory)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cascade.testing", "--port", "0", "--fault-rate", "1", "--faults", "huge"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert url.startswith("http://"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_10mb_body_is_refused_with_bounded_memory(huge_server: str, server: TestServer, tmp_path: Path) -> None:
    limit = 1024 * 1024
    capped = OpenAICompatible(huge_server, max_response_bytes=limit)
    tracemalloc.start()
    try:
        result, attempts, _ = run(server, tmp_path, small=capped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_escalated(result, attempts, "response_too_large", calls=1)
    assert "max_response_bytes=1048576" in attempts[0]["error"]["message"]
    assert peak < 4 * limit  # reading stopped near the cap: the 10 MB body was never held


def test_10mb_body_within_a_larger_cap_is_read(huge_server: str, server: TestServer, tmp_path: Path) -> None:
    roomy = OpenAICompatible(huge_server, max_response_bytes=16 * 1024 * 1024)
    result, _, _ = run(server, tmp_path, small=roomy)
    assert result.answered_by == "small" and len(result.output) == 10 * 1024 * 1024


# -- random faults with a seed --------------------------------------------------------------------------
def test_random_faults_every_request_ends_once_with_known_reasons(server: TestServer, tmp_path: Path) -> None:
    faults = [
        "server_error",
        "rate_limit",
        "bad_gateway",
        "unavailable",
        "reset",
        "invalid_json",
        "no_choices",
        "no_usage",
        "html",
        "close",
    ]
    server.fault_rate(0.3, seed=7, faults=faults)
    log = tmp_path / "log.jsonl"
    p = OpenAICompatible(server.base_url)
    cascade = Cascade(rungs(p, p), log=log)
    items = [[{"role": "user", "content": f"q{i}"}] for i in range(150)]
    results = asyncio.run(cascade.map(items, concurrency=20))
    cascade.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    requests = Counter(e["request_id"] for e in events if e["event"] == "request")
    assert sorted(requests) == sorted(r.request_id for r in results) and set(requests.values()) == {1}
    known = {"server_error", "rate_limited", "connection_error", "bad_response"}
    reasons = {r for e in events if e["event"] == "attempt" for r in e["reasons"]}
    assert reasons <= known and reasons  # 30% faults over 150 requests: some attempts failed
    for r in results:
        assert r.outcome in ("accepted", "exhausted")
        assert r.cost_usd == pytest.approx(sum(a.cost_usd for a in r.attempts))
    assert sum(r.accepted for r in results) >= 145  # two rungs with three tries each absorb 30% faults
    assert any(a.retries for r in results for a in r.attempts)


# -- the same faults on the Anthropic Messages API ------------------------------------------------------
def run_anthropic(server: TestServer, tmp_path: Path) -> Any:
    p = Anthropic(server.url, api_key_env=None, timeout_s=5)
    log = tmp_path / "anthropic.jsonl"
    with Cascade(rungs(p, p), log=log, on_exhausted="best_effort") as cascade:
        result = cascade.run_sync(MSG)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return result, [e for e in events if e["event"] == "attempt"]


@pytest.mark.parametrize(
    ("replies", "reasons", "retries"),
    [
        ([Reply(fault="rate_limit"), Reply()], [[]], 1),
        ([Reply(fault="reset"), Reply()], [[]], 1),
        ([Reply(fault="unavailable")] * 3, [["server_error"], []], 2),
        ([Reply(status=529)] * 3, [["server_error"], []], 2),  # Anthropic's "overloaded"
        ([Reply(fault="html")] * 3, [["server_error"], []], 2),
        ([Reply(fault="invalid_json")], [["bad_response"], []], 0),
        ([Reply(content="cut", finish_reason="length")], [["truncated"], []], 0),
        ([Reply(status=401)], [["auth_failed"], []], 0),
    ],
)
def test_anthropic_faults(
    server: TestServer, tmp_path: Path, replies: list[Reply], reasons: list[list[str]], retries: int
) -> None:
    server.script("small-m", *replies)
    result, attempts = run_anthropic(server, tmp_path)
    assert [a.reasons for a in result.attempts] == reasons == [a["reasons"] for a in attempts]
    assert result.attempts[0].retries == retries == attempts[0]["retries"]
    assert result.accepted


def test_anthropic_missing_usage_is_charged_a_bound(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content="fine", fault="no_usage"))
    result, attempts = run_anthropic(server, tmp_path)
    assert result.answered_by == "small" and attempts[0]["cost_usd"] > 0 and attempts[0]["tokens_in"] > 0
