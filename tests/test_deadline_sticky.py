"""The two request-routing gates of the library: a latency budget across the ladder (deadline) and
sticky escalation per conversation, on the suite's real HTTP test server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from checks import is_json

from cascade import (
    Cascade,
    ConfigError,
    Ladder,
    MemorySink,
    OpenAICompatible,
    RequestError,
    RetryPolicy,
    Rung,
    StickySessions,
)
from cascade.testing import Reply, TestServer
from cascade.validators import Candidate, Verdict

MSG = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Classify: charged twice"}]
FAST = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.02)


def ladder(server: TestServer) -> Ladder:
    p = OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.2, retry=FAST),
            Rung(name="mid", provider=p, model="mid-m", price_in=0.5, price_out=1.0, retry=FAST),
            Rung(name="large", provider=p, model="large-m", price_in=2.0, price_out=8.0, retry=FAST),
        ]
    )


def called(server: TestServer) -> list[str | None]:
    return [r.model for r in server.requests]


# ---------------------------------------------------------------- deadline


def test_a_hanging_rung_is_cut_at_the_deadline_and_nothing_answers_late(server: TestServer) -> None:
    server.default(Reply(content="{}", delay_s=30), model="small-m")
    server.default(Reply(content="{}"))
    sink = MemorySink()
    with Cascade(ladder(server), validators=[is_json], log=sink, on_exhausted="best_effort") as cascade:
        started = time.monotonic()
        result = cascade.run_sync(MSG, deadline_s=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 5  # cut at ~0.5 s, not the 30 s the rung would take (generous for a loaded machine)
    assert [(a.rung, a.outcome, a.reasons) for a in result.attempts] == [
        ("small", "error", ["deadline"]),
        ("mid", "skipped", ["deadline"]),
        ("large", "skipped", ["deadline"]),
    ]
    assert result.attempts[0].calls == 1  # no retry past the deadline
    assert not result.accepted and result.output is None
    assert called(server) == ["small-m"]
    assert sink.of("request")[0]["reason"] == "deadline"


def test_a_rung_whose_p95_no_longer_fits_is_skipped_without_a_call(server: TestServer) -> None:
    server.default(Reply(content="{}", delay_s=0.6), model="small-m")
    server.default(Reply(content="{}"))
    with Cascade(ladder(server), validators=[is_json]) as cascade:
        cascade.deadline.min_calls = 2
        for _ in range(2):  # no deadline: small answers, slowly, and its latency is learned
            assert cascade.run_sync(MSG).answered_by == "small"
        server.reset()
        server.default(Reply(content="{}"))
        result = cascade.run_sync(MSG, deadline_s=0.5)
        assert cascade.deadline.expected_s("small") >= 0.6  # type: ignore[operator]
    assert [(a.rung, a.outcome, a.reasons) for a in result.attempts] == [
        ("small", "skipped", ["deadline"]),
        ("mid", "accepted", []),
    ]
    assert "p95 latency" in result.attempts[0].error["message"]  # type: ignore[index]
    assert called(server) == ["mid-m"]


def test_an_answer_judged_after_the_deadline_is_not_accepted(server: TestServer) -> None:
    class SlowCheck:
        async def validate(self, candidate: Candidate) -> Verdict:
            await asyncio.sleep(0.4)
            return Verdict(True, validator="slow")

    server.default(Reply(content="{}"))
    with Cascade(ladder(server), validators=SlowCheck(), on_exhausted="best_effort") as cascade:
        result = cascade.run_sync(MSG, deadline_s=0.2)
        in_time = cascade.run_sync(MSG, deadline_s=30)
    assert result.attempts[0].reasons == ["deadline"] and not result.accepted
    assert [a.reasons for a in result.attempts[1:]] == [["deadline"], ["deadline"]]
    assert in_time.accepted and in_time.answered_by == "small"


def test_deadline_is_validated_and_the_cascade_default_applies(server: TestServer) -> None:
    with pytest.raises(ConfigError, match="deadline_s"):
        Cascade(ladder(server), validators=[is_json], deadline_s=0)
    server.default(Reply(content="{}", delay_s=30))
    with Cascade(ladder(server), validators=[is_json], deadline_s=0.3) as cascade:
        with pytest.raises(RequestError, match="deadline_s"):
            cascade.run_sync(MSG, deadline_s=float("nan"))
        result = cascade.map_sync([MSG])[0]  # no per-request deadline: the cascade's 0.3 s holds
    assert [a.reasons for a in result.attempts] == [["deadline"]] * 3


# ---------------------------------------------------------------- sticky sessions


def turn(history: list[dict[str, Any]], answer: str, question: str) -> list[dict[str, Any]]:
    return [*history, {"role": "assistant", "content": answer}, {"role": "user", "content": question}]


def test_a_conversation_that_escalated_starts_where_it_ended_up(server: TestServer) -> None:
    server.script("small-m", Reply(content="no"), Reply(content="{}"))
    server.script("mid-m", Reply(content="no"))
    server.default(Reply(content='{"label": "billing"}'), model="large-m")
    sink = MemorySink()
    with Cascade(ladder(server), validators=[is_json], gates=[StickySessions(ttl_s=60)], log=sink) as cascade:
        first = cascade.run_sync(MSG)
        second = cascade.run_sync(turn(MSG, '{"label": "billing"}', "And the refund?"))
        other = cascade.run_sync([{"role": "user", "content": "A different conversation"}])
    assert first.answered_by == "large"
    assert [(a.rung, a.outcome, a.reasons) for a in second.attempts] == [
        ("small", "skipped", ["sticky"]),
        ("mid", "skipped", ["sticky"]),
        ("large", "accepted", []),
    ]
    assert other.answered_by == "small"  # another session starts at the bottom
    assert called(server) == ["small-m", "mid-m", "large-m", "large-m", "small-m"]
    skipped = [e for e in sink.of("attempt") if e["outcome"] == "skipped"]
    assert {e["reasons"][0] for e in skipped} == {"sticky"} and len(skipped) == 2


def test_sticky_sessions_follow_the_session_id_and_expire() -> None:
    now = [0.0]
    gate = StickySessions(ttl_s=10, clock=lambda: now[0])
    gate.remember("s-a", 2)
    gate.remember("s-a", 1)  # a lower rung never lowers a session's start
    assert gate.floor("s-a") == 2 and gate.floor("s-b") is None
    assert gate.session({"session_id": "s-a"}, MSG) == "s-a"
    assert gate.session({}, MSG) == gate.session({}, turn(MSG, "x", "y"))  # later turns, same session
    now[0] = 10.5
    assert gate.floor("s-a") is None  # past its TTL
    with pytest.raises(ConfigError, match="ttl_s"):
        StickySessions(ttl_s=0)
    small = StickySessions(max_sessions=2)
    for name in ("a", "b", "c"):
        small.remember(name, 1)
    assert len(small) == 2 and small.floor("a") is None


def test_an_escalation_for_an_error_is_not_sticky(server: TestServer) -> None:
    """A cheap rung that was down says nothing about how hard the conversation is."""
    server.script("small-m", Reply(status=401))
    server.default(Reply(content="{}"))
    with Cascade(ladder(server), validators=[is_json], gates=[StickySessions()]) as cascade:
        first = cascade.run_sync(MSG)
        second = cascade.run_sync(turn(MSG, "{}", "next"))
    assert first.answered_by == "mid" and first.attempts[0].reasons == ["auth_failed"]
    assert second.answered_by == "small"
