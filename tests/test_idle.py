"""SkipIdle: a rung that keeps failing its checks is skipped without a call, probed now and then,
and comes back when a probe is accepted. Over the real test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checks import is_json

from cascade import Cascade, ConfigError, Ladder, OpenAICompatible, RetryPolicy, Rung, SkipIdle
from cascade.testing import Reply, TestServer

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]


def _ladder(server: TestServer) -> Ladder:
    p = OpenAICompatible(server.base_url)
    once = RetryPolicy(attempts=1)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.2, retry=once),
            Rung(name="large", provider=p, model="large-m", price_in=2.0, price_out=8.0, retry=once),
        ]
    )


def test_an_idle_rung_is_skipped_probed_and_brought_back(server: TestServer, tmp_path: Path) -> None:
    small_answers = iter(["no"] * 4 + ['{"label": "billing"}'] * 10)  # fails 4 times, then is fine
    server.responder("small-m", lambda body: Reply(content=next(small_answers)))
    server.default(Reply(content='{"label": "billing"}'), model="large-m")
    log = tmp_path / "log.jsonl"
    with Cascade(_ladder(server), validators=[is_json], log=log, skip_idle=SkipIdle(after=3, probe_every=4)) as c:
        results = [c.run_sync(MSG) for _ in range(13)]
    small_called = [i + 1 for i, r in enumerate(results) if r.attempts[0].outcome != "skipped"]
    # 3 misses start the skipping; requests 7 and 11 are probes; 7 fails, 11 is accepted: back for good
    assert small_called == [1, 2, 3, 7, 11, 12, 13]
    assert [r.answered_by for r in results[10:]] == ["small"] * 3
    skipped = [r.attempts[0] for r in results if r.attempts[0].outcome == "skipped"]
    assert len(skipped) == 6 and all(a.reasons == ["rung_idle"] and a.cost_usd == 0 for a in skipped)
    assert all(r.accepted for r in results)  # a skipped rung costs nothing and loses nothing
    events = [json.loads(line) for line in log.read_text().splitlines()]
    idle = [(e["rung"], e["to"], e["reason"]) for e in events if e["event"] == "idle"]
    assert idle == [("small", "skipping", "no_answer_accepted"), ("small", "active", "probe_accepted")]
    assert len([r for r in server.requests if r.model == "small-m"]) == 7


def test_the_top_rung_is_never_skipped(server: TestServer) -> None:
    server.default(Reply(content="not json"))
    with Cascade(_ladder(server), validators=[is_json], on_exhausted="best_effort", skip_idle=SkipIdle(1, 100)) as c:
        results = [c.run_sync(MSG) for _ in range(4)]
    assert [[a.outcome for a in r.attempts] for r in results] == [
        ["escalated", "escalated"],
        ["skipped", "escalated"],
        ["skipped", "escalated"],
        ["skipped", "escalated"],
    ]


def test_errors_count_neither_way(server: TestServer) -> None:
    """A failing provider is the circuit breaker's business: it does not make a rung idle."""
    server.default(Reply(status=503), model="small-m")
    server.default(Reply(content='{"label": "billing"}'), model="large-m")
    with Cascade(_ladder(server), validators=[is_json], skip_idle=SkipIdle(after=2)) as c:
        results = [c.run_sync(MSG) for _ in range(4)]
    assert all(r.attempts[0].outcome != "skipped" for r in results)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"after": 0}, "SkipIdle.after: expected an integer >= 1, got 0"),
        ({"probe_every": 2.5}, "SkipIdle.probe_every: expected an integer >= 1, got 2.5"),
    ],
)
def test_bad_policy_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        SkipIdle(**kwargs)  # type: ignore[arg-type]


def test_skip_idle_must_be_a_policy(server: TestServer) -> None:
    with pytest.raises(ConfigError, match="skip_idle: expected a SkipIdle or None, got 3"):
        Cascade(_ladder(server), skip_idle=3)  # type: ignore[arg-type]
