"""The cascade core end to end through the suite's OpenAI-compatible test server (real HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from checks import is_json, unchecked_on_purpose

from cascade import (
    Anthropic,
    CallerError,
    Cascade,
    CascadeExhausted,
    ConfigError,
    Ladder,
    MemorySink,
    OpenAICompatible,
    RequestError,
    RequestParams,
    RetryPolicy,
    Rung,
)
from cascade.testing import Reply, TestServer
from cascade.validators import Verdict, check

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]
FAST_RETRY = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.05)


def ladder(server: TestServer, **kw: Any) -> Ladder:
    p = OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.2, retry=FAST_RETRY, **kw),
            Rung(name="large", provider=p, model="large-m", price_in=2.0, price_out=8.0, retry=FAST_RETRY, **kw),
        ]
    )


def test_rejected_cheap_rung_escalates_and_costs_add_up(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content="not json", tokens_in=10, tokens_out=5))
    server.script("large-m", Reply(content='{"label": "billing"}', tokens_in=10, tokens_out=7))
    log = tmp_path / "esc.jsonl"
    with Cascade(ladder(server), validators=[is_json], log=log) as cascade:
        result = cascade.run_sync(MSG, metadata={"tenant": "acme"})
    assert result.accepted and result.answered_by == "large"
    assert result.output == '{"label": "billing"}'
    assert [a.rung for a in result.attempts] == ["small", "large"]
    assert [a.outcome for a in result.attempts] == ["escalated", "accepted"]
    assert result.attempts[0].reasons == ["custom:is_json"]
    small_cost = (10 * 0.1 + 5 * 0.2) / 1e6
    large_cost = (10 * 2.0 + 7 * 8.0) / 1e6
    assert result.attempts[0].cost_usd == pytest.approx(small_cost)
    assert result.attempts[1].cost_usd == pytest.approx(large_cost)
    assert result.cost_usd == pytest.approx(small_cost + large_cost)
    assert result.escalations == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["attempt", "attempt", "request"]
    req = lines[-1]
    assert req["answered_by"] == "large" and req["escalations"] == 1 and req["metadata"] == {"tenant": "acme"}
    assert req["cost_usd"] == pytest.approx(small_cost + large_cost)
    assert lines[0]["reasons"] == ["custom:is_json"] and lines[0]["price_out"] == 0.2
    assert "output" not in lines[0] and "prompt" not in req  # content is not logged by default
    assert log.stat().st_mode & 0o777 == 0o600


@unchecked_on_purpose
def test_429_with_retry_after_is_retried_on_the_same_rung_and_the_wait_honoured(server: TestServer) -> None:
    server.script("small-m", Reply(status=429, headers={"Retry-After": "0.3"}), Reply(content="ok"))
    cascade = Cascade(ladder(server))
    started = time.perf_counter()
    result = cascade.run_sync(MSG)
    waited = time.perf_counter() - started
    assert result.answered_by == "small"
    assert result.attempts[0].retries == 1 and result.attempts[0].calls == 2
    assert waited >= 0.3  # the server's Retry-After, not the 10 ms backoff
    assert [r.model for r in server.requests] == ["small-m", "small-m"]


@unchecked_on_purpose
def test_repeated_5xx_exhaust_retries_and_escalate_with_a_reason(server: TestServer) -> None:
    server.script("small-m", *[Reply(status=503) for _ in range(3)])
    result = Cascade(ladder(server)).run_sync(MSG)
    assert result.answered_by == "large"
    first = result.attempts[0]
    assert first.outcome == "error" and first.reasons == ["server_error"]
    assert first.calls == 3 and first.retries == 2
    assert first.error is not None and first.error["status"] == 503


@unchecked_on_purpose
def test_401_escalates_without_retry(server: TestServer) -> None:
    server.script("small-m", Reply(status=401))
    result = Cascade(ladder(server)).run_sync(MSG)
    assert result.attempts[0].reasons == ["auth_failed"] and result.attempts[0].calls == 1
    assert result.answered_by == "large"


@unchecked_on_purpose
def test_context_length_exceeded_escalates(server: TestServer) -> None:
    server.script(
        "small-m",
        Reply(
            status=400,
            error={"message": "prompt too long", "type": "invalid_request_error", "code": "context_length_exceeded"},
        ),
    )
    result = Cascade(ladder(server)).run_sync(MSG)
    assert result.attempts[0].reasons == ["context_length_exceeded"]
    assert result.answered_by == "large"


@unchecked_on_purpose
def test_malformed_request_raises_a_clear_error_without_burning_the_ladder(server: TestServer) -> None:
    server.script("small-m", Reply(status=400, error={"message": "'messages' must be a list", "type": "invalid"}))
    sink = MemorySink()
    with pytest.raises(CallerError, match="HTTP 400"):
        Cascade(ladder(server), log=sink).run_sync(MSG)
    assert [r.model for r in server.requests] == ["small-m"]  # the large rung was never called
    assert sink.of("request")[0]["outcome"] == "error"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ("hello", "messages: expected a list"),
        ([], "at least one message"),
        ([{"role": "bot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
    ],
)
@unchecked_on_purpose
def test_bad_messages_name_the_field_and_value(server: TestServer, messages: Any, fragment: str) -> None:
    with pytest.raises(RequestError) as err:
        Cascade(ladder(server)).run_sync(messages)
    assert fragment in str(err.value)
    assert server.requests == []


@unchecked_on_purpose
def test_bad_per_request_option_names_the_field(server: TestServer) -> None:
    with pytest.raises(RequestError, match="temperature"):
        Cascade(ladder(server)).run_sync(MSG, temperature=9)


def test_exhausted_raises_with_the_result_or_returns_best_effort(server: TestServer) -> None:
    server.default(Reply(content="nope"))
    never = check(lambda c: False, name="never")
    with pytest.raises(CascadeExhausted) as err:
        Cascade(ladder(server), validators=never).run_sync(MSG)
    assert not err.value.result.accepted and len(err.value.result.attempts) == 2
    result = Cascade(ladder(server), validators=never, on_exhausted="best_effort").run_sync(MSG)
    assert not result.accepted and result.output == "nope" and result.answered_by == "large"
    assert result.outcome == "exhausted"


@unchecked_on_purpose
def test_truncated_output_is_a_failed_answer(server: TestServer) -> None:
    server.script("small-m", Reply(content='{"label": "bil', finish_reason="length"))
    server.script("large-m", Reply(content='{"label": "billing"}'))
    result = Cascade(ladder(server)).run_sync(MSG)
    assert result.attempts[0].reasons == ["truncated"] and result.answered_by == "large"


def test_reask_feeds_the_failure_back_then_accepts(server: TestServer) -> None:
    server.script("small-m", Reply(content="oops"), Reply(content='{"a": 1}'))
    p = OpenAICompatible(server.base_url)
    one = Ladder(
        [Rung(name="small", provider=p, model="small-m", price_in=1, price_out=1, reasks=1, validators=[is_json])]
    )
    result = Cascade(one).run_sync(MSG)
    assert [a.outcome for a in result.attempts] == ["reask", "accepted"]
    second = server.requests[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": "oops"}
    assert "custom:is_json" in second[-1]["content"]


def test_validator_that_raises_fails_closed(server: TestServer) -> None:
    def boom(c: Any) -> bool:
        raise ValueError("bug in check")

    result = Cascade(ladder(server), validators=check(boom, name="boom"), on_exhausted="best_effort").run_sync(MSG)
    assert result.attempts[0].reasons == ["validator_error"]
    assert "bug in check" in result.attempts[0].verdicts[0].detail


def test_async_validator_and_scores_reach_the_log(server: TestServer) -> None:
    class Scored:
        name = "scored"

        async def validate(self, c: Any) -> Verdict:
            await asyncio.sleep(0)
            return Verdict(c.rung == "large", "low_score", score=0.42 if c.rung == "small" else 0.9)

    sink = MemorySink()
    Cascade(ladder(server), validators=Scored(), log=sink).run_sync(MSG)
    first, second = sink.of("attempt")
    assert first["verdicts"] == [
        {"validator": "scored", "passed": False, "reason": "low_score", "score": 0.42, "detail": ""}
    ]
    assert second["outcome"] == "accepted"


@unchecked_on_purpose
def test_map_keeps_order_and_isolates_failures(server: TestServer) -> None:
    server.responder("small-m", lambda body: Reply(content=body["messages"][-1]["content"].upper()))
    items: list[Any] = [[{"role": "user", "content": f"item {i}"}] for i in range(20)]
    items[7] = [{"role": "bot", "content": "bad"}]
    cascade = Cascade(ladder(server))
    results = asyncio.run(cascade.map(items, concurrency=5))
    assert len(results) == 20
    assert results[3].output == "ITEM 3" and results[19].output == "ITEM 19"
    assert results[7].outcome == "error" and "messages[0].role" in (results[7].error or "")


@unchecked_on_purpose
def test_one_provider_works_across_event_loops(server: TestServer) -> None:
    cascade = Cascade(ladder(server))
    assert cascade.run_sync(MSG).accepted
    assert asyncio.run(cascade.run(MSG)).accepted
    assert asyncio.run(cascade.run(MSG)).accepted
    assert cascade.run_sync(MSG).accepted
    cascade.close()


@unchecked_on_purpose
def test_run_sync_inside_a_loop_says_what_to_do(server: TestServer) -> None:
    async def inner() -> None:
        with pytest.raises(RuntimeError, match=r"await cascade\.run"):
            Cascade(ladder(server)).run_sync(MSG)

    asyncio.run(inner())


def test_anthropic_provider_over_the_messages_api(server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    server.require_api_key("sk-ant-test")
    server.script("claude-x", Reply(content="hello", tokens_in=12, tokens_out=3))
    p = Anthropic(server.base_url, api_key_env="TEST_ANTHROPIC_KEY")
    c = Cascade([Rung(name="claude", provider=p, model="claude-x", price_in=3, price_out=15)])
    result = c.run_sync([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert result.output == "hello" and result.cost_usd == pytest.approx((12 * 3 + 3 * 15) / 1e6)
    body = server.requests[0].body
    assert body["system"] == "be brief" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 1024


@unchecked_on_purpose
def test_missing_usage_is_charged_an_upper_bound_not_zero(server: TestServer) -> None:
    server.script("small-m", Reply(content="abc", fault="no_usage"))
    result = Cascade(ladder(server)).run_sync(MSG)
    a = result.attempts[0]
    assert a.tokens_in >= len(MSG[0]["content"]) and a.tokens_out >= 3 and a.cost_usd > 0


def test_api_key_never_in_repr_error_or_log(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "sk-live-SECRET-1234567890"
    monkeypatch.setenv("TEST_OPENAI_KEY", secret)
    server.require_api_key("something-else")
    p = OpenAICompatible(server.base_url, api_key_env="TEST_OPENAI_KEY")
    log = tmp_path / "log.jsonl"
    cascade = Cascade(
        [Rung(name="a", provider=p, model="m", price_in=1, price_out=1)], log=log, on_exhausted="best_effort"
    )
    result = cascade.run_sync(MSG)
    assert result.attempts[0].reasons == ["auth_failed"]
    everything = repr(p) + repr(cascade) + repr(result) + str(result.to_dict()) + log.read_text()
    assert secret not in everything
    assert server.requests[0].headers.get("authorization") == f"Bearer {secret}"  # it was sent, just never shown


def test_config_errors_name_the_field_and_value(server: TestServer) -> None:
    p = OpenAICompatible(server.base_url)
    with pytest.raises(ConfigError, match="price_in"):
        Rung(name="a", provider=p, model="m", price_in=-1, price_out=1)
    with pytest.raises(ConfigError, match="provider"):
        Rung(name="a", provider=None, model="m", price_in=1, price_out=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="duplicate rung name 'a'"):
        Ladder([Rung(name="a", provider=p, model="m", price_in=1, price_out=1)] * 2)
    with pytest.raises(ConfigError, match="at least one rung"):
        Ladder([])
    with pytest.raises(ConfigError, match="temperature"):
        Rung(name="a", provider=p, model="m", price_in=1, price_out=1, params={"temperature": "hot"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_tokens"):
        Rung(name="a", provider=p, model="m", price_in=1, price_out=1, params={"max_tokens": 0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="budget_usd"):
        Cascade(ladder(server), budget_usd=-1)
    with pytest.raises(ConfigError, match="api_key_env"):
        OpenAICompatible(server.base_url, api_key_env="SURELY_NOT_SET_ANYWHERE_123")
    with pytest.raises(ConfigError, match="base_url"):
        OpenAICompatible("localhost:8080")


def test_a_thousand_requests_at_concurrency_100_give_a_thousand_request_events(
    server: TestServer, tmp_path: Path
) -> None:
    log = tmp_path / "big.jsonl"
    server.default(Reply(content='{"ok": true}'))
    cascade = Cascade(ladder(server), validators=[is_json], log=log)
    items = [[{"role": "user", "content": f"q{i}"}] for i in range(1000)]
    results = asyncio.run(cascade.map(items, concurrency=100))
    cascade.close()
    assert all(r.accepted for r in results)
    parsed = [json.loads(line) for line in log.read_text().splitlines()]  # a malformed line would raise here
    requests = [e for e in parsed if e["event"] == "request"]
    assert len(requests) == 1000 and len({e["request_id"] for e in requests}) == 1000


def test_a_schema_check_asks_for_json_mode_in_the_providers_style(server: TestServer) -> None:
    from cascade.validators import JsonSchema

    schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]}
    server.default(Reply(content='{"label": "a"}'))
    llama = OpenAICompatible(server.base_url, json_mode="llama_cpp")
    plain = OpenAICompatible(server.base_url)  # "auto": not api.openai.com, so no json mode
    own = {"type": "json_object"}
    ladder = Ladder(
        [
            Rung(name="a", provider=llama, model="a", price_in=1, price_out=1, validators=[JsonSchema(schema)]),
            Rung(name="b", provider=plain, model="b", price_in=1, price_out=1, validators=[JsonSchema(schema)]),
            Rung(
                name="c", provider=llama, model="c", price_in=1, price_out=1, params=RequestParams(response_format=own)
            ),
        ]
    )
    cascade = Cascade(ladder, validators=JsonSchema(schema))
    cascade.run_sync(MSG)  # rung "a" accepts
    body = server.requests[0].body
    assert body["response_format"] == {"type": "json_object", "schema": schema}
    assert "response_format" not in cascade.params_for("b")
    assert cascade.params_for("c")["response_format"] == own  # the rung's own setting wins
    assert OpenAICompatible("https://api.openai.com/v1").json_mode == "openai"
    with pytest.raises(ConfigError, match="json_mode"):
        OpenAICompatible(server.base_url, json_mode="xml")  # type: ignore[arg-type]


def test_a_confidence_check_asks_the_rung_for_logprobs(server: TestServer) -> None:
    from cascade.validators import Confidence, JsonSchema

    p = OpenAICompatible(server.base_url)
    checks = JsonSchema({"type": "object"}) & Confidence(0.5)
    ladder = Ladder(
        [
            Rung(name="a", provider=p, model="a", price_in=1, price_out=1, validators=checks),
            Rung(name="b", provider=p, model="b", price_in=1, price_out=1, params=RequestParams(top_logprobs=3)),
        ]
    )
    cascade = Cascade(ladder, validators=Confidence(0.5))
    assert cascade.params_for("a")["logprobs"] is True and cascade.params_for("a")["top_logprobs"] == 10
    assert cascade.params_for("b")["top_logprobs"] == 3  # the rung's own value wins
    server.default(Reply(content="{}", logprobs=[("{}", -0.01, {"{}": -0.01})]))
    result = cascade.run_sync(MSG)
    assert result.answered_by == "a" and server.requests[0].body["logprobs"] is True


def test_a_request_finishing_after_close_still_writes_its_log_lines(server: TestServer, tmp_path: Path) -> None:
    """One thread closes the cascade while another's request is in flight: its lines are not lost."""
    server.script("small-m", Reply(content='{"label": "billing"}', delay_s=0.3))
    log = tmp_path / "esc.jsonl"
    cascade = Cascade(ladder(server), validators=[is_json], log=log)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(cascade.run_sync, MSG)
        server.wait_for_requests(1)
        cascade.close()  # from this thread, while the other one waits for its answer
        assert in_flight.result().accepted
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["attempt", "request"]
