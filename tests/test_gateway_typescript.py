"""The gateway from TypeScript: ``examples/ts`` (the real ``openai`` npm package, compiled by ``tsc``, run
with node) against a gateway started here: plain, streamed, tool calls, errors.

``make test-deps`` runs ``npm install`` and the build there; without them this module skips and says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from checks import is_json
from gateway_helpers import serve

from cascade.testing import Reply, TestServer
from cascade.validators import ToolCalls

CLIENT = Path(__file__).resolve().parent.parent / "examples" / "ts" / "dist" / "gateway_client.js"
NODE = shutil.which("node")
if NODE is None:
    pytest.skip("node is not installed: the TypeScript client cannot run", allow_module_level=True)
if not CLIENT.exists():
    pytest.skip(
        f"{CLIENT} is not built: run `make test-deps` (npm install and tsc in examples/ts)", allow_module_level=True
    )

MSG_ANSWER = '{"label": "billing"}'


def node(base_url: str, scenario: str) -> Any:
    env = {**os.environ, "CASCADE_GATEWAY_URL": base_url, "CASCADE_GATEWAY_KEY": "unused"}
    out = subprocess.run([NODE, str(CLIENT), scenario], env=env, capture_output=True, text=True, timeout=60)  # type: ignore[list-item]
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_plain_and_streamed_escalations_from_typescript(server: TestServer) -> None:
    server.script("small-m", Reply(content="a draft, not JSON"), Reply(content="another draft"))
    server.default(Reply(content=MSG_ANSWER), model="large-m")
    with serve(server, [is_json]) as gw:
        plain = node(gw.base_url, "plain")
        streamed = node(gw.base_url, "stream")
    assert plain["model"] == "large-m" and plain["content"] == MSG_ANSWER
    assert (plain["answeredBy"], plain["escalations"]) == ("large", "1") and plain["costUsd"] > 0
    assert plain["attempts"] == ["small:escalated", "large:accepted"]
    assert streamed["models"] == ["large-m"]
    assert streamed["deltas"] == ['{"label":', ' "billing"}'] and "draft" not in "".join(streamed["deltas"])


def test_tool_calls_and_errors_from_typescript(server: TestServer) -> None:
    server.script("small-m", Reply(tool_calls=(("get_wether", "{}"),)))
    server.script("large-m", Reply(tool_calls=(("get_weather", '{"city": "Paris"}'),)))
    with serve(server, ToolCalls(required=True)) as gw:
        tools = node(gw.base_url, "tools")
    assert tools == {"model": "large-m", "finishReason": "tool_calls", "calls": [["get_weather", {"city": "Paris"}]]}
    assert server.requests[0].body["tool_choice"] == "required"

    server.reset()
    server.default(Reply(content="never JSON"))
    with serve(server, [is_json]) as gw:
        error = node(gw.base_url, "error")
    assert error == {
        "error": "UnprocessableEntityError",
        "status": 422,
        "code": "cascade_exhausted",
        "reasons": ["custom:is_json"],
    }
