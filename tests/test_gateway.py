"""The gateway end to end with the real ``openai`` Python client: escalation, headers and the ``cascade``
object, streams that never leak a rejected draft, tool calls, errors in OpenAI's shape, the endpoints."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from checks import is_json
from gateway_helpers import serve

from cascade.testing import Reply, TestServer
from cascade.validators import Confidence, JsonSchema, ToolCalls

openai = pytest.importorskip("openai", reason="the gateway client tests need the openai package (dev extra)")

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]
DRAFT = "I think this is probably about billing, not sure"
ANSWER = '{"label": "billing", "why": "a double charge"}'
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def client(base_url: str, **kw: object) -> Any:  # openai.OpenAI (the module comes from importorskip, so Any)
    return openai.OpenAI(base_url=base_url, api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def test_escalated_answer_names_the_rung_model_in_body_and_headers(server: TestServer) -> None:
    server.script("small-m", Reply(content=DRAFT, tokens_in=10, tokens_out=5))
    server.script("large-m", Reply(content=ANSWER, tokens_in=10, tokens_out=7))
    with serve(server, [is_json]) as gw:
        raw = client(gw.base_url).chat.completions.with_raw_response.create(model="cascade/tickets", messages=MSG)
    completion = raw.parse()
    assert completion.model == "large-m"
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    cost = (10 * 0.1 + 5 * 0.2 + 10 * 2.0 + 7 * 8.0) / 1e6
    assert raw.headers["x-cascade-answered-by"] == "large"
    assert raw.headers["x-cascade-escalations"] == "1"
    assert float(raw.headers["x-cascade-cost-usd"]) == pytest.approx(cost)
    account = completion.model_extra["cascade"]
    assert account["request_id"] == raw.headers["x-cascade-request-id"] and account["accepted"] is True
    assert [(a["rung"], a["outcome"], a["reasons"]) for a in account["attempts"]] == [
        ("small", "escalated", ["custom:is_json"]),
        ("large", "accepted", []),
    ]
    assert completion.usage is not None and completion.usage.prompt_tokens == 20


def test_streamed_escalated_request_yields_exactly_the_accepted_answer(server: TestServer) -> None:
    server.script("small-m", Reply(content=DRAFT))
    server.script("large-m", Reply(content=ANSWER))
    with serve(server, [is_json]) as gw:
        stream = client(gw.base_url).chat.completions.create(
            model="cascade/tickets",
            messages=MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert {c.model for c in chunks} == {"large-m"}  # every chunk names the answering model
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ['{"label":', ' "billing",', ' "why":', ' "a', " double", ' charge"}']
    assert "".join(deltas) == ANSWER
    assert not any(word in "".join(deltas) for word in ("think", "probably", "sure"))  # nothing of the draft
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage: a last usage chunk


def test_stream_or_not_the_rungs_get_the_same_request(server: TestServer) -> None:
    """A peer gateway asked for logprobs only when not streaming; here acceptance cannot depend on it."""
    server.default(Reply(content="billing", logprobs=[("billing", -0.01, {"billing": -0.01})]))
    with serve(server, Confidence(0.9)) as gw:
        oa = client(gw.base_url)
        plain = oa.chat.completions.create(model="cascade/tickets", messages=MSG, temperature=0)
        streamed = list(oa.chat.completions.create(model="cascade/tickets", messages=MSG, temperature=0, stream=True))
    first, second = server.requests
    assert first.body == second.body and first.body["logprobs"] is True and "stream" not in first.body
    assert plain.choices[0].message.content == "".join(c.choices[0].delta.content or "" for c in streamed)


def test_tool_calls_through_the_gateway_plain_and_streamed(server: TestServer) -> None:
    good = Reply(tool_calls=(("get_weather", '{"city": "Paris"}'),))
    server.script("small-m", Reply(tool_calls=(("get_wether", "{}"),)), Reply(tool_calls=(("get_wether", "{}"),)))
    server.script("large-m", good, good)
    with serve(server, ToolCalls(required=True)) as gw:
        oa = client(gw.base_url)
        plain = oa.chat.completions.create(
            model="cascade/tickets",
            messages=MSG,
            tools=[WEATHER],
            tool_choice="required",
            seed=3,
            user="u-9",
        )
        streamed = list(oa.chat.completions.create(model="cascade/tickets", messages=MSG, tools=[WEATHER], stream=True))
    call = plain.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert plain.choices[0].finish_reason == "tool_calls" and plain.model == "large-m"
    body = server.requests[0].body
    assert body["tools"] == [WEATHER] and (body["tool_choice"], body["seed"], body["user"]) == ("required", 3, "u-9")
    calls = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.function.name, tc.function.arguments) for tc in calls] == [("get_weather", '{"city": "Paris"}')]
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_unsatisfiable_request_is_an_openai_error_with_the_reasons(server: TestServer) -> None:
    server.default(Reply(content="not json"))
    with serve(server, JsonSchema({"type": "object"})) as gw:
        with pytest.raises(openai.UnprocessableEntityError) as info:
            client(gw.base_url).chat.completions.create(model="cascade/tickets", messages=MSG)
        with pytest.raises(openai.UnprocessableEntityError):  # streaming too: an error, never a leaked draft
            client(gw.base_url).chat.completions.create(model="cascade/tickets", messages=MSG, stream=True)
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "cascade_exhausted"
    assert error["reasons"] == ["json_unparseable"] and "json_unparseable" in error["message"]
    assert info.value.response.headers["x-cascade-escalations"] == "1"
    assert len(server.requests) == 4  # 2 rungs x 2 requests: the client did not retry


def test_best_effort_answer_is_flagged(server: TestServer) -> None:
    server.script("small-m", Reply(content="not json 1"))
    server.script("large-m", Reply(content="not json 2"))
    with serve(server, [is_json], on_exhausted="best_effort") as gw:
        raw = client(gw.base_url).chat.completions.with_raw_response.create(model="cascade/tickets", messages=MSG)
    completion = raw.parse()
    assert completion.choices[0].message.content == "not json 2" and completion.model == "large-m"
    assert raw.headers["x-cascade-accepted"] == "false"
    assert completion.model_extra["cascade"]["accepted"] is False


def test_client_errors_in_openai_shape(server: TestServer) -> None:
    server.script("small-m", Reply(status=400, error={"message": "unsupported parameter: seed"}))
    with serve(server, [is_json]) as gw:
        oa = client(gw.base_url)
        with pytest.raises(openai.NotFoundError, match="cascade/tickets"):
            oa.chat.completions.create(model="gpt-4o", messages=MSG)
        with pytest.raises(openai.BadRequestError, match="unsupported parameter: seed"):
            oa.chat.completions.create(model="cascade/tickets", messages=MSG, seed=1)
        with pytest.raises(openai.BadRequestError, match="messages"):
            oa.chat.completions.create(model="cascade/tickets", messages=[{"role": "wizard", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="n"):
            oa.chat.completions.create(model="cascade/tickets", messages=MSG, n=2)
        bad = [
            httpx.post(f"{gw.base_url}/chat/completions", content=b"{not json"),
            httpx.post(
                f"{gw.base_url}/chat/completions", json={"model": "cascade/tickets", "messages": MSG, "temprature": 1}
            ),
            httpx.get(f"{gw.base_url}/nowhere"),
            httpx.get(f"{gw.base_url}/chat/completions"),
            httpx.post(
                f"{gw.base_url}/chat/completions",
                json={"model": "cascade/tickets", "messages": MSG, "metadata": {"k": "v" * 513}},
            ),
            httpx.post(f"{gw.base_url}/chat/completions", content=b" " * (17 * 1024 * 1024)),
            httpx.post(f"{gw.base_url}/chat/completions", content=iter([b" " * 1024 * 1024] * 17)),  # chunked
        ]
    assert [r.status_code for r in bad] == [400, 400, 404, 405, 400, 413, 413]
    assert all(set(r.json()["error"]) >= {"message", "type", "code"} for r in bad)
    assert "temprature" in bad[1].json()["error"]["message"]


def test_models_health_ready_and_metrics(server: TestServer) -> None:
    server.default(Reply(content="{}"))
    with serve(server, [is_json]) as gw:
        models = client(gw.base_url).models.list()
        client(gw.base_url).chat.completions.create(model="tickets", messages=MSG)
        health, ready = httpx.get(f"{gw.url}/healthz"), httpx.get(f"{gw.url}/readyz")
        metrics = httpx.get(f"{gw.url}/metrics")
    assert [m.id for m in models.data] == ["cascade/tickets"]
    assert (health.status_code, ready.status_code) == (200, 200)
    assert 'cascade_requests_total{outcome="accepted"} 1.0' in metrics.text
    attempts = [line for line in metrics.text.splitlines() if line.startswith("cascade_attempts_total{")]
    assert [line.endswith(" 1.0") for line in attempts if 'rung="small"' in line and 'outcome="accepted"' in line] == [
        True
    ]
