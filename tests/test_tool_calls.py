"""Tool calls through the library: parsed from OpenAI and Anthropic answers, the request surface passed
through to every rung, and checks that escalate an invented tool or malformed arguments."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cascade import (
    Anthropic,
    Cascade,
    FunctionProvider,
    Ladder,
    MemorySink,
    OpenAICompatible,
    RequestError,
    RetryPolicy,
    Rung,
    ToolCall,
)
from cascade._types import Completion
from cascade.testing import Reply, TestServer
from cascade.validators import JsonSchema, ToolCalls

MSG = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
FAST = RetryPolicy(attempts=1)


def ladder_of_one() -> Ladder:
    answer = FunctionProvider(lambda request: Completion("ok", 1, 1))
    return Ladder([Rung(name="only", provider=answer, model="f", price_in=0, price_out=0)])


def ladder(server: TestServer, provider: Any = None) -> Ladder:
    p = provider or OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.2, retry=FAST),
            Rung(name="large", provider=p, model="large-m", price_in=2.0, price_out=8.0, retry=FAST),
        ]
    )


def test_tool_call_is_parsed_and_request_surface_reaches_every_rung(server: TestServer) -> None:
    server.script("small-m", Reply(content="", tool_calls=(("get_wether", '{"city": "Paris"}'),)))
    server.script("large-m", Reply(content="", tool_calls=(("get_weather", '{"city": "Paris"}'),)))
    with Cascade(ladder(server), validators=ToolCalls(required=True)) as cascade:
        result = cascade.run_sync(
            MSG,
            tools=[WEATHER],
            tool_choice="auto",
            seed=7,
            stop=["\n\n"],
            user="u-42",
            response_format={"type": "text"},
            extra={"metadata": {"ticket": "T-1"}},
        )
    assert result.answered_by == "large"
    assert result.tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)
    assert result.attempts[0].reasons == ["tool_unknown"]
    assert result.attempts[0].tool_calls[0].name == "get_wether"
    bodies = [r.body for r in server.requests]
    assert [b["model"] for b in bodies] == ["small-m", "large-m"]
    for body in bodies:
        assert body["tools"] == [WEATHER] and body["tool_choice"] == "auto"
        assert (body["seed"], body["stop"], body["user"]) == (7, ["\n\n"], "u-42")
        assert body["metadata"] == {"ticket": "T-1"} and body["response_format"] == {"type": "text"}


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [('{"city": 3}', "schema_invalid"), ("{city: Paris", "json_unparseable"), (None, "tool_call_missing")],
)
def test_json_schema_over_a_tool_calls_arguments_escalates_bad_ones(
    server: TestServer, arguments: str | None, reason: str
) -> None:
    bad = Reply(content="It is sunny.") if arguments is None else Reply(tool_calls=(("get_weather", arguments),))
    server.script("small-m", bad)
    server.script("large-m", Reply(tool_calls=(("get_weather", '{"city": "Paris"}'),)))
    check = JsonSchema(WEATHER["function"]["parameters"], tool="get_weather")  # type: ignore[index]
    with Cascade(ladder(server), validators=check) as cascade:
        result = cascade.run_sync(MSG, tools=[WEATHER])
    assert result.attempts[0].reasons == [reason]
    assert result.answered_by == "large" and result.parsed == {"city": "Paris"}
    assert "response_format" not in server.requests[0].body  # the schema is for the arguments, not the text


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (("get_weather", '{"town": "Paris"}'), "tool_arguments_invalid"),
        (("get_weather", "Paris"), "tool_arguments_unparseable"),
        (("delete_everything", "{}"), "tool_unknown"),
    ],
)
def test_tool_calls_check_rejects_what_the_request_did_not_declare(
    server: TestServer, call: tuple[str, str], reason: str
) -> None:
    server.script("small-m", Reply(tool_calls=(call,)))
    server.script("large-m", Reply(content="I cannot check the weather."))
    with Cascade(ladder(server), validators=ToolCalls()) as cascade:
        result = cascade.run_sync(MSG, tools=[WEATHER])
    assert result.attempts[0].reasons == [reason]
    assert result.answered_by == "large" and result.tool_calls == ()  # no call is fine unless required


def test_anthropic_tool_use_round_trip(server: TestServer) -> None:
    provider = Anthropic(server.base_url, api_key_env=None)
    server.script("small-m", Reply(content="Let me look.", tool_calls=(("get_weather", '{"city": "Paris"}'),)))
    history: list[dict[str, Any]] = [
        *MSG,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Nice"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "18C"},
    ]
    with Cascade(ladder(server, provider), validators=ToolCalls(required=True)) as cascade:
        result = cascade.run_sync(history, tools=[WEATHER], tool_choice="required", user="u-1")
    assert result.answered_by == "small" and result.output == "Let me look."
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]
    body = server.requests[0].body
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
            "description": "Current weather of a city",
        }
    ]
    assert body["tool_choice"] == {"type": "any"} and body["metadata"] == {"user_id": "u-1"}
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "t1",
        "name": "get_weather",
        "input": {"city": "Nice"},
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "18C"}],
    }


def test_more_than_one_choice_is_refused_naming_the_field(server: TestServer) -> None:
    with Cascade(ladder(server), validators=ToolCalls()) as cascade, pytest.raises(RequestError, match="n"):
        cascade.run_sync(MSG, n=3)
    assert server.requests == []


def test_closing_a_cascade_closes_a_jsonl_log_given_in_a_list(tmp_path: Path) -> None:
    """Regression: ``log=[path, sink]`` (a MultiSink) left the JSONL file open after ``close()``."""
    cascade = Cascade(ladder_of_one(), log=[tmp_path / "log.jsonl", MemorySink()])
    log = str(tmp_path / "log.jsonl")

    def open_on_log() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _target(fd) == log)

    assert open_on_log() == 1
    cascade.close()
    assert open_on_log() == 0


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # closed between listing and reading
        return ""
