"""Batches that survive a crash: ``map(..., resume_from=log)`` after SIGKILL pays for nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, OpenAICompatible, Rung
from cascade._logs._read import read_log
from cascade._logs._resume import LogWarning, item_id
from cascade.testing import Reply, TestServer

N_ITEMS = 240
CONCURRENCY = 8

BATCH = """
import asyncio, json, sys
from cascade import Cascade, OpenAICompatible, Rung

base_url, log, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = OpenAICompatible(base_url)
rungs = [Rung(name="small", provider=p, model="small-m", price_in=1, price_out=2),
         Rung(name="large", provider=p, model="large-m", price_in=5, price_out=9)]
items = [[{"role": "user", "content": f"item {i}"}] for i in range(n)]
with Cascade(rungs, log=log, log_content="full") as cascade:
    results = cascade.map_sync(items, concurrency=concurrency, resume_from=log)
print(json.dumps([[r.output, r.resumed, r.outcome, r.cost_usd] for r in results]))
"""


def answer(body: dict[str, Any]) -> Reply:
    content = body["messages"][-1]["content"]
    if content.endswith("7") and body["model"] == "small-m":  # every tenth item escalates
        return Reply(fault="no_choices", delay_s=0.01)
    return Reply(content=f"answer to {content}", delay_s=0.01)


def request_events(log: Path) -> list[dict[str, Any]]:
    return [e for e in read_log(log).events if e["event"] == "request"]


def test_sigkilled_batch_resumes_without_paying_twice(server: TestServer, tmp_path: Path) -> None:
    server.responder("small-m", answer)
    server.responder("large-m", answer)
    script = tmp_path / "batch.py"
    script.write_text(BATCH)
    log = tmp_path / "batch.jsonl"
    cmd = [sys.executable, str(script), server.base_url, str(log), str(N_ITEMS), str(CONCURRENCY)]

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(request_events(log)) >= N_ITEMS // 4:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the batch finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Every line written before the kill parses (a torn last line would be reported, not raised).
    killed = read_log(log)
    assert all(b.torn for b in killed.bad_lines) and len(killed.bad_lines) <= 1
    finished_before = {e["request_id"] for e in killed.events if e["event"] == "request"}
    assert N_ITEMS // 4 <= len(finished_before) < N_ITEMS
    asked_before = Counter(r.body["messages"][-1]["content"] for r in server.requests)

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)

    # Nothing that finished before the kill was asked again; only items in flight at the kill were asked
    # in both runs, and there were at most `concurrency` of those.
    asked_after = Counter(r.body["messages"][-1]["content"] for r in server.requests) - asked_before
    ids = {f"item {i}": item_id([{"role": "user", "content": f"item {i}"}]) for i in range(N_ITEMS)}
    for content, rid in ids.items():
        calls = 2 if content.endswith("7") else 1  # an escalating item calls both rungs
        if rid in finished_before:
            assert (asked_before[content], asked_after[content]) == (calls, 0), content
        else:
            assert asked_after[content] == calls, content
    in_flight = [c for c, rid in ids.items() if rid not in finished_before and asked_before[c]]
    assert len(in_flight) <= CONCURRENCY

    # Every item ends with exactly one request event overall, and every result is there and right.
    final = Counter(e["request_id"] for e in request_events(log))
    assert set(final) == set(ids.values()) and set(final.values()) == {1}
    assert [r[0] for r in results] == [f"answer to item {i}" for i in range(N_ITEMS)]
    assert all(r[2] == "accepted" for r in results)
    assert sum(r[1] for r in results) == len(finished_before)  # rebuilt from the log, marked resumed
    resume_events = [e for e in read_log(log).events if e["event"] == "resume"]
    assert [e["done"] for e in resume_events] == [0, len(finished_before)]


def ladder(server: TestServer) -> list[Rung]:
    p = OpenAICompatible(server.base_url)
    return [Rung(name="small", provider=p, model="small-m", price_in=1, price_out=2)]


def items(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_a_torn_last_line_is_tolerated_reported_and_not_glued_to(server: TestServer, tmp_path: Path) -> None:
    log = tmp_path / "b.jsonl"
    with Cascade(ladder(server), log=log) as cascade:
        first = cascade.map_sync(items(3), resume_from=log)
    torn = '{"event":"request","request_id":"' + first[0].request_id + '","outcome":"acc'
    with open(log, "a") as f:
        f.write(torn)  # what a kill in the middle of a write leaves
    assert read_log(log).bad_lines[0].torn
    server.reset()
    with Cascade(ladder(server), log=log) as cascade, pytest.warns(LogWarning, match="torn last line"):
        again = cascade.map_sync(items(5), resume_from=log)
    assert [r.resumed for r in again] == [True, True, True, False, False]
    assert [r.body["messages"][0]["content"] for r in server.requests] == ["q3", "q4"]
    after = read_log(log)
    assert len(after.bad_lines) == 1 and not after.bad_lines[0].torn  # our lines started on a fresh one
    resume = next(e for e in after.events if e["event"] == "resume" and e["done"] == 3)
    assert resume["bad_lines"][0]["torn"] is True
    assert len(request_events(log)) == 5


def test_rebuilt_results_carry_the_account_but_no_content_unless_logged(server: TestServer, tmp_path: Path) -> None:
    log = tmp_path / "c.jsonl"
    server.default(Reply(content="yes", tokens_in=10, tokens_out=3))
    with Cascade(ladder(server), log=log) as cascade:
        (ran,) = cascade.map_sync(items(1), resume_from=log)
        (rebuilt,) = cascade.map_sync(items(1), resume_from=log)
    assert ran.output == "yes" and not ran.resumed
    assert rebuilt.resumed and rebuilt.output is None  # log_content="none": the text is not in the log
    assert rebuilt.request_id == ran.request_id and rebuilt.cost_usd == pytest.approx(ran.cost_usd)
    assert rebuilt.answered_by == "small" and rebuilt.accepted and rebuilt.outcome == "accepted"
    assert [(a.rung, a.outcome, a.tokens_in, a.tokens_out) for a in rebuilt.attempts] == [("small", "accepted", 10, 3)]
    assert rebuilt.to_dict()["resumed"] is True
    assert len(server.requests) == 1


def test_identical_items_are_distinct_and_given_ids_are_kept(server: TestServer, tmp_path: Path) -> None:
    log = tmp_path / "d.jsonl"
    batch: list[Any] = [items(1)[0], items(1)[0], {"messages": items(2)[1], "request_id": "mine-1"}]
    with Cascade(ladder(server), log=log) as cascade:
        results = cascade.map_sync(batch, resume_from=log)
        assert cascade.map_sync(batch, resume_from=log)[1].resumed
    base = item_id(items(1)[0])
    assert [r.request_id for r in results] == [base, f"{base}-2", "mine-1"]
    assert len(server.requests) == 3


def test_cancelled_requests_are_run_again(server: TestServer, tmp_path: Path) -> None:
    log = tmp_path / "e.jsonl"
    server.default(Reply(content="slow", delay_s=5))

    async def interrupted() -> None:
        async with Cascade(ladder(server), log=log) as cascade:
            task = asyncio.ensure_future(cascade.map(items(2), resume_from=log))
            while len(server.requests) < 2:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(interrupted())
    assert {e["reason"] for e in request_events(log)} == {"cancelled"}
    server.reset()
    with Cascade(ladder(server), log=log) as cascade:
        results = cascade.map_sync(items(2), resume_from=log)
    assert [r.resumed for r in results] == [False, False] and all(r.accepted for r in results)


def test_missing_log_is_a_first_run(server: TestServer, tmp_path: Path) -> None:
    with Cascade(ladder(server)) as cascade:
        results = cascade.map_sync(items(2), resume_from=tmp_path / "nothing-yet.jsonl")
    assert all(r.accepted and not r.resumed for r in results)


def test_a_bad_request_id_is_an_error_result_not_a_lost_item(server: TestServer, tmp_path: Path) -> None:
    batch: list[Any] = [{"messages": items(1)[0], "request_id": 42}, items(2)[1]]
    with Cascade(ladder(server), log=tmp_path / "f.jsonl") as cascade:
        bad, good = cascade.map_sync(batch, resume_from=tmp_path / "f.jsonl")
    assert bad.outcome == "error" and "request_id: expected a non-empty string, got 42" in (bad.error or "")
    assert good.accepted and len(server.requests) == 1
