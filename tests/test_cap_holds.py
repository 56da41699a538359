"""The spend cap, from the attacker's side: calls that were sent and never answered are charged (a real
provider bills them), the prompt bound counts everything that reaches the prompt, an overrun is flagged
even when accepted, nonsense costs are bounded, and a batch item cannot raise the cap."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hostile import answer, close_mid_body, gzip_bomb, hostile, reset_after_request, silent

from cascade import Cascade, Completion, OpenAICompatible, RetryPolicy, Rung
from cascade._ledger import prompt_token_bound
from cascade.validators import JsonSchema, SelfConsistency

MSG = [{"role": "user", "content": "hi"}]
PRICE = 1.0  # USD per million tokens, in and out


class Fn:
    name = "fn"
    json_mode: str | None = None

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.requests: list[Any] = []

    async def complete(self, request: Any) -> Completion:
        self.requests.append(request)
        return self.fn(request)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        return None


def honest(request: Any) -> Completion:
    """Bills what was really sent: every byte of the messages and params is a prompt token (as a
    byte-level tokenizer at worst would), and the answer's bytes out."""
    sent = json.dumps({"messages": list(request.messages), **dict(request.params)})
    text = "ok"
    return Completion(text=text, tokens_in=len(sent.encode()), tokens_out=len(text))


def rung(provider: Any, retry: RetryPolicy | None = None, **kw: Any) -> Rung:
    return Rung(name="a", provider=provider, model="m", price_in=PRICE, price_out=PRICE,
                retry=retry or RetryPolicy(attempts=1), **kw)  # fmt: skip


# -- sent and never answered ------------------------------------------------------------------------------------
HOSTILE = {
    "reset": reset_after_request(),
    "close-mid-body": close_mid_body(),
    "read-timeout": silent(),
    "too-large": gzip_bomb(8 * 1024 * 1024),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_call_sent_and_never_answered_is_charged_its_bound(tmp_path: Path, case: str) -> None:
    """The review's server billed 3.0x the cap while the ledger said $0."""
    retry = RetryPolicy(attempts=3, initial_wait_s=0, max_wait_s=0.01)
    with hostile(HOSTILE[case]) as srv:
        p = OpenAICompatible(srv.base_url, timeout_s=0.5, max_response_bytes=1024 * 1024)
        with Cascade([rung(p, retry, params={"max_tokens": 100})], log=tmp_path / "log.jsonl",
                     on_exhausted="best_effort") as c:  # fmt: skip
            result = c.run_sync(MSG)
        calls = len(srv.requests)
    (attempt,) = result.attempts
    assert attempt.outcome == "error" and attempt.calls == calls >= 1
    assert attempt.charged_at_bound
    per_call = attempt.cost_usd / calls
    assert per_call > 100 * PRICE / 1e6  # at least max_tokens of output was charged per call
    assert math.isclose(result.cost_usd, attempt.cost_usd)
    (logged,) = [
        e for e in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if e["event"] == "attempt"
    ]
    assert logged["charged_at_bound"] is True and logged["cost_usd"] == attempt.cost_usd


def test_retries_of_unanswered_calls_stop_at_the_cap() -> None:
    """Each retry reserves its own bound: with money for two calls, the third is never sent."""
    retry = RetryPolicy(attempts=5, initial_wait_s=0, max_wait_s=0.01)
    with hostile(reset_after_request()) as srv:
        p = OpenAICompatible(srv.base_url)
        one_call = (prompt_token_bound(MSG) + 100) * PRICE / 1e6  # the reserved bound of one call
        budget = 2.5 * one_call
        with Cascade([rung(p, retry, params={"max_tokens": 100})], budget_usd=budget, on_exhausted="best_effort") as c:
            result = c.run_sync(MSG)
        calls = len(srv.requests)
    assert calls == 2
    assert result.cost_usd <= budget
    assert result.attempts[0].charged_at_bound


# -- what the prompt bound counts ---------------------------------------------------------------------------------
def test_tools_count_in_the_prompt_bound() -> None:
    """10 KB of tool definitions on a $0.001 cap: an honest provider billed 16x the cap."""
    tools = [{"type": "function", "function": {"name": f"t{i}", "description": "x" * 1000}} for i in range(10)]
    p = Fn(honest)
    budget = 2_000 * PRICE / 1e6  # the messages alone fit; with the tools the call does not
    with Cascade([rung(p, params={"extra": {"tools": tools}})], budget_usd=budget, on_exhausted="best_effort") as c:
        result = c.run_sync(MSG)
    assert result.cost_usd <= budget
    assert p.requests == [] and result.attempts[0].reasons == ["budget_exhausted"]


def test_the_response_format_the_engine_adds_counts_in_the_prompt_bound() -> None:
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string", "description": "d" * 200}
                                               for i in range(20)}}  # fmt: skip
    p = Fn(honest)
    p.json_mode = "openai"  # the engine adds the schema as response_format itself
    budget = 2_000 * PRICE / 1e6
    with Cascade([rung(p, validators=JsonSchema(schema))], budget_usd=budget, on_exhausted="best_effort") as c:
        result = c.run_sync(MSG)
    assert result.cost_usd <= budget
    assert p.requests == [] and result.attempts[0].reasons == ["budget_exhausted"]


def test_an_image_part_counts_in_the_prompt_bound() -> None:
    picture = {"url": "https://example.invalid/cat.png", "detail": "high"}
    image = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": picture}]

    def vision(request: Any) -> Completion:
        return Completion(text="a cat", tokens_in=1105 + 10, tokens_out=2)  # 1105 tokens for one HD image

    budget = 500 * PRICE / 1e6
    with Cascade([rung(Fn(vision))], budget_usd=budget, on_exhausted="best_effort") as c:
        result = c.run_sync([{"role": "user", "content": image}])
    assert result.cost_usd <= budget


# -- flags and nonsense ------------------------------------------------------------------------------------------
def test_budget_overrun_is_flagged_on_an_accepted_answer(tmp_path: Path) -> None:
    """$0.50 charged on a $0.02 cap, accepted, with ``reasons []`` and no flag."""

    def liar(request: Any) -> Completion:
        return Completion(text="ok", tokens_in=10, tokens_out=request.params["max_tokens"] * 100)

    log = tmp_path / "log.jsonl"
    with Cascade([rung(Fn(liar))], budget_usd=0.02, log=log) as c:
        result = c.run_sync(MSG)
    assert result.accepted and result.budget_overrun and result.attempts[0].budget_overrun
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e["budget_overrun"] for e in events] == [True, True]  # the attempt and the request


@pytest.mark.parametrize("cost", [math.nan, math.inf, -1.0, -math.inf])
def test_a_cost_that_is_not_a_number_is_charged_the_bound_and_never_logged(tmp_path: Path, cost: float) -> None:
    log = tmp_path / "log.jsonl"
    with Cascade([rung(Fn(lambda r: Completion(text="ok", tokens_in=5, tokens_out=5, cost_usd=cost)))],
                 budget_usd=0.01, log=log) as c:  # fmt: skip
        result = c.run_sync(MSG)
    assert math.isfinite(result.cost_usd) and result.cost_usd > 0 and result.attempts[0].charged_at_bound
    assert result.cost_usd <= 0.01

    def strict(name: str) -> Any:
        raise ValueError(f"{name} in the log")

    for line in log.read_text().splitlines():
        json.loads(line, parse_constant=strict)


def test_zero_tokens_for_a_non_empty_answer_is_not_believed() -> None:
    text = "a long answer " * 20
    with Cascade([rung(Fn(lambda r: Completion(text=text, tokens_in=0, tokens_out=0)))]) as c:
        result = c.run_sync(MSG)
    assert result.attempts[0].tokens_out == len(text.encode()) + 1 and result.cost_usd > 0


def test_duplicate_usage_keys_are_not_believed() -> None:
    """JSON keeps the last duplicate: a server put ``completion_tokens: 1`` after the real count."""
    text = "x" * 300
    usage = '"usage": {"prompt_tokens": 9, "completion_tokens": 300, "completion_tokens": 1}'
    raw = ('{"choices": [{"message": {"content": "' + text + '"}, "finish_reason": "stop"}], ' + usage + "}").encode()
    with hostile(answer(200, raw)) as srv, Cascade([rung(OpenAICompatible(srv.base_url))]) as c:
        result = c.run_sync(MSG)
    assert result.attempts[0].tokens_out == len(text) + 1  # the engine's bound, not the smaller lie


# -- who sets the cap ---------------------------------------------------------------------------------------------
def test_a_batch_item_may_lower_the_cap_never_raise_it() -> None:
    p = Fn(lambda r: Completion(text="ok", tokens_in=5, tokens_out=5))
    with Cascade([rung(p)], budget_usd=1e-3) as c:
        raised, lowered, plain = c.map_sync(
            [{"messages": MSG, "budget_usd": 1e6}, {"messages": MSG, "budget_usd": 1e-4}, {"messages": MSG}]
        )
    assert raised.outcome == "error" and "above the Cascade's cap" in (raised.error or "")
    assert lowered.accepted and plain.accepted
    assert len(p.requests) == 2
    with Cascade([rung(p)], budget_usd=1e-3, allow_budget_increase=True) as c:
        (allowed,) = c.map_sync([{"messages": MSG, "budget_usd": 1.0}])
    assert allowed.accepted


def test_self_consistency_under_a_budget_splits_what_is_left() -> None:
    """Each sample reserved the whole remainder: budget_exhausted with 28x the money needed."""
    p = Fn(lambda r: Completion(text="42", tokens_in=10, tokens_out=2))
    needed = 5 * (10 + 2) * PRICE / 1e6  # what the five calls really cost
    with Cascade([rung(p, validators=SelfConsistency(samples=5))], budget_usd=28 * needed) as c:
        result = c.run_sync(MSG)
    assert result.accepted, [a.reasons for a in result.attempts]
    assert len(p.requests) == 5
