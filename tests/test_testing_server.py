"""cascade.testing.TestServer, driven with plain httpx over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cascade.testing import FAULTS, HUGE_BYTES, Reply, TestServer, split_tokens

MESSAGES = [{"role": "user", "content": "Classify: free money now!!!"}]
http = httpx.Client(timeout=5.0)  # one pooled client: a new one per call costs an SSL context each


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    http.close()


def chat(server: TestServer, model: str = "m", timeout: float = 5.0, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, **extra}
    return http.post(f"{server.base_url}/chat/completions", json=body, timeout=timeout)


def message(
    server: TestServer, model: str = "claude", headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": MESSAGES, **extra}
    return http.post(f"{server.base_url}/messages", json=body, headers=headers, timeout=5.0)


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    return text


# -- answers --------------------------------------------------------------------------------------
def test_default_answer_has_the_openai_shape(server: TestServer) -> None:
    response = chat(server, model="gpt-x")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-x"
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "ok", "refusal": None}
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    prompt_chars = len(MESSAGES[0]["content"])
    assert data["usage"] == {
        "prompt_tokens": prompt_chars // 4 + 1,
        "completion_tokens": len("ok") // 4 + 1,
        "total_tokens": prompt_chars // 4 + 1 + 1,
    }


def test_script_is_a_fifo_per_model_then_the_default(server: TestServer) -> None:
    server.script("small", Reply(content="s1"), Reply(content="s2"))
    server.script("big", Reply(content="b1"))
    server.script("small", Reply(content="s3"))
    assert server.pending("small") == 3
    assert content(chat(server, "small")) == "s1"
    assert content(chat(server, "big")) == "b1"
    assert content(chat(server, "small")) == "s2"
    assert content(chat(server, "big")) == "ok"
    assert content(chat(server, "small")) == "s3"
    assert server.pending("small") == 0
    assert content(chat(server, "small")) == "ok"


def test_default_per_model_beats_the_any_model_default(server: TestServer) -> None:
    server.default(Reply(content="anyone"))
    server.default(Reply(content="only-big"), model="big")
    assert content(chat(server, "big")) == "only-big"
    assert content(chat(server, "small")) == "anyone"
    server.script("big", Reply(content="queued"))
    assert content(chat(server, "big")) == "queued"
    assert content(chat(server, "big")) == "only-big"


def test_scripted_tokens_and_finish_reason(server: TestServer) -> None:
    server.script("m", Reply(content="cut", tokens_in=100, tokens_out=7, finish_reason="length"))
    data = chat(server).json()
    assert data["usage"] == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    assert data["choices"][0]["finish_reason"] == "length"


def test_responder_answers_from_the_request(server: TestServer) -> None:
    seen: list[dict[str, Any]] = []

    def by_seed(body: dict[str, Any]) -> Reply:
        seen.append(body)
        return Reply(content=f"seed={body.get('seed')} t={body.get('temperature')}")

    server.responder("m", by_seed)
    assert content(chat(server, seed=3, temperature=0.7)) == "seed=3 t=0.7"
    assert content(chat(server, seed=4)) == "seed=4 t=None"
    assert seen[0]["messages"] == MESSAGES
    server.script("m", Reply(content="queued first"))
    assert content(chat(server, seed=5)) == "queued first"
    assert content(chat(server, seed=6)) == "seed=6 t=None"
    assert content(chat(server, model="other")) == "ok"


def test_async_responder(server: TestServer) -> None:
    async def slow_echo(body: dict[str, Any]) -> Reply:
        await asyncio.sleep(0)
        return Reply(content=body["messages"][-1]["content"].upper())

    server.responder("m", slow_echo)
    assert content(chat(server)) == MESSAGES[0]["content"].upper()


def test_a_failing_responder_gives_500_and_is_reported(server: TestServer) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise KeyError("label")

    server.responder("m", broken)
    response = chat(server)
    assert response.status_code == 500
    assert "KeyError" in response.json()["error"]["message"]
    server.responder("m", lambda body: "not a reply")  # type: ignore[arg-type, return-value]
    assert chat(server).status_code == 500
    errors = server.errors
    assert len(errors) == 2 and "KeyError" in errors[0] and "expected a Reply" in errors[1]
    server.reset()  # the fixture fails tests that leave handler errors behind
    assert server.errors == []


def test_n_choices_take_one_scripted_reply_each(server: TestServer) -> None:
    server.script("m", Reply(content="a"), Reply(content="b"), Reply(content="a"), Reply(content="next"))
    data = chat(server, n=3).json()
    assert [c["message"]["content"] for c in data["choices"]] == ["a", "b", "a"]
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert data["usage"]["completion_tokens"] == 3
    assert content(chat(server)) == "next"


# -- error statuses ---------------------------------------------------------------------------------
def test_scripted_error_status_with_headers_and_default_body(server: TestServer) -> None:
    server.script("m", Reply(status=429, headers={"Retry-After": "1"}))
    response = chat(server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"]
    assert set(error) >= {"message", "type", "code"}


def test_scripted_error_body(server: TestServer) -> None:
    error = {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}
    server.script("m", Reply(status=400, error=error))
    response = chat(server)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": None,
        "code": "context_length_exceeded",
    }


@pytest.mark.parametrize("status", [401, 404, 500, 503, 418])
def test_every_error_status_has_an_openai_error_body(server: TestServer, status: int) -> None:
    server.script("m", Reply(status=status))
    response = chat(server)
    assert response.status_code == status
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)


# -- faults -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ("server_error", 500, None),
        ("rate_limit", 429, "0"),
        ("rate_limit_no_header", 429, None),
        ("bad_gateway", 502, None),
        ("unavailable", 503, None),
    ],
)
def test_error_faults(server: TestServer, fault: str, status: int, retry_after: str | None) -> None:
    server.script("m", Reply(fault=fault))
    response = chat(server)
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after
    assert response.json()["error"]["message"]
    assert content(chat(server)) == "ok"  # the fault was used up


def test_fault_replies_keep_their_headers(server: TestServer) -> None:
    server.script(
        "m",
        Reply(fault="unavailable", headers={"Retry-After": "7"}),
        Reply(fault="rate_limit", headers={"X-Request-Id": "r1"}),
    )
    unavailable = chat(server)
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "7"
    limited = chat(server)
    assert limited.headers["retry-after"] == "0" and limited.headers["x-request-id"] == "r1"


def test_reset_sends_headers_and_part_of_the_body_then_aborts(server: TestServer) -> None:
    server.script("m", Reply(content="x" * 2000, fault="reset"))
    body = {"model": "m", "messages": MESSAGES}
    received = b""
    with (
        httpx.Client(timeout=5) as client,
        client.stream("POST", f"{server.base_url}/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        announced = int(response.headers["content-length"])
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            for chunk in response.iter_raw():
                received += chunk
    assert 0 < len(received) < announced
    assert content(chat(server)) == "ok"  # the server is fine afterwards


def test_close_drops_the_connection_before_any_response(server: TestServer) -> None:
    server.script("m", Reply(fault="close"))
    with pytest.raises(httpx.RemoteProtocolError):
        chat(server)
    assert content(chat(server)) == "ok"


@pytest.mark.parametrize("fault", ["timeout", "hang"])
def test_hang_never_answers_until_the_client_gives_up(server: TestServer, fault: str) -> None:
    server.script("m", Reply(fault=fault))
    with pytest.raises(httpx.ReadTimeout):
        chat(server, timeout=0.3)
    assert content(chat(server)) == "ok"


def test_delay_holds_the_headers(server: TestServer) -> None:
    server.script("m", Reply(content="late", delay_s=30))
    with pytest.raises(httpx.ReadTimeout):
        chat(server, timeout=0.2)
    server.script("m", Reply(content="soon", delay_s=0.05))
    assert content(chat(server)) == "soon"


def test_trickle_sends_a_valid_body_in_small_pieces(server: TestServer) -> None:
    server.script("m", Reply(content="slow answer", fault="trickle", trickle_bytes=20, trickle_pause_s=0.02))
    chunks: list[bytes] = []
    with (
        httpx.Client(timeout=5) as client,
        client.stream(
            "POST", f"{server.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
        ) as response,
    ):
        assert response.status_code == 200
        chunks.extend(response.iter_raw())
    assert len(chunks) >= 3
    assert json.loads(b"".join(chunks))["choices"][0]["message"]["content"] == "slow answer"


def test_invalid_json(server: TestServer) -> None:
    server.script("m", Reply(fault="invalid_json"))
    response = chat(server)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_html_error_page(server: TestServer) -> None:
    server.script("m", Reply(fault="html"))
    response = chat(server)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html>")


def test_no_choices_and_no_usage(server: TestServer) -> None:
    server.script("m", Reply(fault="no_choices"), Reply(content="hi", fault="no_usage"))
    first = chat(server)
    assert first.status_code == 200
    assert "choices" not in first.json() and "usage" in first.json()
    second = chat(server).json()
    assert "usage" not in second
    assert second["choices"][0]["message"]["content"] == "hi"


def test_huge_body_is_ten_megabytes_of_valid_json(server: TestServer) -> None:
    server.script("m", Reply(fault="huge"))
    response = chat(server, timeout=30, logprobs=True)
    assert response.status_code == 200
    assert len(response.content) >= 10 * 1024 * 1024
    choice = response.json()["choices"][0]
    assert len(choice["message"]["content"]) == HUGE_BYTES
    assert choice["logprobs"] is None  # 10 MB of logprobs would be ~50 MB of JSON


def test_every_fault_name_is_known_and_unknown_ones_are_refused() -> None:
    assert len(FAULTS) == 15
    with pytest.raises(ValueError, match=r"Reply.fault='explode'"):
        Reply(fault="explode")


# -- logprobs --------------------------------------------------------------------------------------
def test_logprobs_only_when_asked(server: TestServer) -> None:
    server.default(Reply(content="spam, surely", logprobs=[("spam", -0.1, {"spam": -0.1, "ham": -2.4})]))
    assert chat(server).json()["choices"][0]["logprobs"] is None
    assert chat(server, logprobs=False).json()["choices"][0]["logprobs"] is None
    items = chat(server, logprobs=True, top_logprobs=2).json()["choices"][0]["logprobs"]["content"]
    assert items == [
        {
            "token": "spam",
            "logprob": -0.1,
            "bytes": list(b"spam"),
            "top_logprobs": [
                {"token": "spam", "logprob": -0.1, "bytes": list(b"spam")},
                {"token": "ham", "logprob": -2.4, "bytes": list(b"ham")},
            ],
        }
    ]


def test_scripted_alternatives_are_ranked_and_cut_to_top_logprobs(server: TestServer) -> None:
    server.default(Reply(content="b", logprobs=[("b", -0.5, {"a": -3.0, "b": -0.5, "c": -1.0})]))
    items = chat(server, logprobs=True, top_logprobs=2).json()["choices"][0]["logprobs"]["content"]
    assert [alt["token"] for alt in items[0]["top_logprobs"]] == ["b", "c"]


def test_generated_logprobs_split_the_content(server: TestServer) -> None:
    server.default(Reply(content='{"label": "spam"} ok'))
    lp = chat(server, logprobs=True, top_logprobs=1).json()["choices"][0]["logprobs"]["content"]
    tokens = [item["token"] for item in lp]
    assert "".join(tokens) == '{"label": "spam"} ok'
    assert len(tokens) > 3
    assert all(item["logprob"] == 0.0 for item in lp)
    assert all(
        item["top_logprobs"] == [{"token": item["token"], "logprob": 0.0, "bytes": list(item["token"].encode())}]
        for item in lp
    )
    no_top = chat(server, logprobs=True).json()["choices"][0]["logprobs"]["content"]
    assert all(item["top_logprobs"] == [] for item in no_top)


def test_split_tokens_round_trips() -> None:
    for text in ["", "a", "  lead and trail  ", 'x: {"k": [1, 2.5]}\n\tend.', "naïve café"]:
        assert "".join(split_tokens(text)) == text


# -- Anthropic -------------------------------------------------------------------------------------
def test_anthropic_messages_shape(server: TestServer) -> None:
    cut = Reply(content="cut", finish_reason="length", tokens_out=9)
    server.script("claude", Reply(content="hello"), cut)
    response = message(server, system="Be brief.")
    assert response.status_code == 200
    data = response.json()
    assert data["type"] == "message" and data["role"] == "assistant" and data["model"] == "claude"
    assert data["content"] == [{"type": "text", "text": "hello"}]
    assert data["stop_reason"] == "end_turn"
    prompt = "Be brief." + MESSAGES[0]["content"]
    assert data["usage"] == {"input_tokens": len(prompt) // 4 + 1, "output_tokens": len("hello") // 4 + 1}
    second = message(server).json()
    assert second["stop_reason"] == "max_tokens"
    assert second["usage"]["output_tokens"] == 9


def test_anthropic_errors_and_faults(server: TestServer) -> None:
    server.script(
        "claude",
        Reply(status=429, headers={"Retry-After": "2"}),
        Reply(fault="unavailable"),
        Reply(fault="no_choices"),
        Reply(fault="no_usage"),
    )
    limited = message(server)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached for requests"},
    }
    overloaded = message(server)
    assert overloaded.status_code == 503
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert "content" not in message(server).json()
    assert "usage" not in message(server).json()
    missing = http.post(f"{server.base_url}/messages", json={"model": "claude", "messages": MESSAGES})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error"
    assert "max_tokens" in missing.json()["error"]["message"]


def test_anthropic_and_openai_share_the_script(server: TestServer) -> None:
    server.script("m", Reply(content="first"), Reply(content="second"))
    assert message(server, model="m").json()["content"][0]["text"] == "first"
    assert content(chat(server, "m")) == "second"


# -- API key ---------------------------------------------------------------------------------------
def test_require_api_key(server: TestServer) -> None:
    server.require_api_key("sk-test")
    body = {"model": "m", "messages": MESSAGES}
    url = f"{server.base_url}/chat/completions"
    missing = http.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert http.post(url, json=body, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
    assert http.post(url, json=body, headers={"x-api-key": "sk-test"}).status_code == 401  # bearer only
    assert http.post(url, json=body, headers={"Authorization": "Bearer sk-test"}).status_code == 200
    assert http.get(f"{server.base_url}/models").status_code == 401
    assert http.get(f"{server.base_url}/models", headers={"x-api-key": "sk-test"}).status_code == 200
    assert message(server, headers={"x-api-key": "sk-test"}).status_code == 200
    denied = message(server, headers={"x-api-key": "nope"})
    assert denied.status_code == 401
    assert denied.json()["error"]["type"] == "authentication_error"
    assert server.requests[0].headers.get("authorization") is None
    assert server.requests[1].headers["authorization"] == "Bearer sk-wrong"
    server.require_api_key(None)
    assert chat(server).status_code == 200


# -- bad requests, models, recording ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "'model'"),
        (b'{"model": 5, "messages": []}', "'model'"),
        (b'{"model": "m"}', "'messages'"),
        (b'{"model": "m", "messages": "hi"}', "'messages'"),
    ],
)
def test_bad_requests_get_400_naming_the_field(server: TestServer, raw: bytes, needle: str) -> None:
    response = http.post(
        f"{server.base_url}/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert server.requests[-1].path == "/v1/chat/completions"


def test_models_lists_scripted_models(server: TestServer) -> None:
    server.script("small", Reply())
    server.default(Reply(), model="big")
    server.responder("mid", lambda body: Reply())
    data = http.get(f"{server.base_url}/models").json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["big", "mid", "small"]


def test_requests_are_recorded_in_order(server: TestServer) -> None:
    chat(server, "a", temperature=0)
    message(server, "b", headers={"X-Trace": "t1"})
    recorded = server.requests
    assert [(r.path, r.model) for r in recorded] == [("/v1/chat/completions", "a"), ("/v1/messages", "b")]
    assert recorded[0].body == {"model": "a", "messages": MESSAGES, "temperature": 0}
    assert recorded[1].headers["x-trace"] == "t1"
    assert recorded[1].headers["X-Trace"] == recorded[1].headers.get("X-TRACE") == "t1"
    assert "X-Trace" in recorded[1].headers and "x-trace" in dict(recorded[1].headers)
    recorded.clear()  # a copy: the server's log is untouched
    assert len(server.requests) == 2


def test_wait_for_requests(server: TestServer) -> None:
    server.default(Reply(fault="hang"))
    timeouts: list[Exception] = []

    def call() -> None:
        try:
            chat(server, timeout=1)
        except httpx.ReadTimeout as exc:
            timeouts.append(exc)

    callers = [threading.Thread(target=call) for _ in range(2)]
    for caller in callers:
        caller.start()
    assert len(server.wait_for_requests(2)) == 2
    for caller in callers:
        caller.join()
    assert len(timeouts) == 2
    with pytest.raises(TimeoutError, match=r"wait_for_requests\(3\): only 2"):
        server.wait_for_requests(3, timeout_s=0.05)


def test_reset_forgets_everything(server: TestServer) -> None:
    server.script("m", Reply(content="queued"))
    server.default(Reply(content="dflt"))
    server.responder("r", lambda body: Reply(content="resp"))
    server.fault_rate(1.0, seed=1, faults=("server_error",))
    server.require_api_key("sk")
    http.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    server.reset()
    assert server.requests == []
    assert content(chat(server, "m")) == "ok"
    assert content(chat(server, "r")) == "ok"
    assert len(server.requests) == 2


# -- fault rates -----------------------------------------------------------------------------------
def _statuses(server: TestServer, count: int, model: str = "m") -> list[int]:
    out: list[int] = []
    for _ in range(count):
        try:
            out.append(chat(server, model).status_code)
        except httpx.TransportError:
            out.append(-1)
    return out


def test_fault_rate_is_reproducible_with_a_seed(server: TestServer) -> None:
    faults = ("server_error", "rate_limit", "bad_gateway", "reset")
    server.fault_rate(0.5, seed=7, faults=faults)
    first = _statuses(server, 40)
    server.fault_rate(0.5, seed=7, faults=faults)
    assert _statuses(server, 40) == first
    assert 200 in first and {500, 429, 502, -1} & set(first)
    server.fault_rate(0.5, seed=8, faults=faults)
    assert _statuses(server, 40) != first


def test_fault_rate_per_model_and_queue_preserved(server: TestServer) -> None:
    server.fault_rate(1.0, faults=("unavailable",), model="flaky")
    server.script("flaky", Reply(content="kept"))
    assert _statuses(server, 3, "flaky") == [503, 503, 503]
    assert content(chat(server, "steady")) == "ok"
    server.fault_rate(0, model="flaky")
    assert content(chat(server, "flaky")) == "kept"


def test_fault_rate_rejects_bad_arguments(server: TestServer) -> None:
    with pytest.raises(ValueError, match="rate"):
        server.fault_rate(1.5)
    with pytest.raises(ValueError, match="nope"):
        server.fault_rate(0.1, faults=("server_error", "nope"))
    with pytest.raises(ValueError, match="faults"):
        server.fault_rate(0.1, faults="reset")


def test_reply_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"Reply\.status"):
        Reply(status=99)
    with pytest.raises(ValueError, match=r"Reply\.delay_s"):
        Reply(delay_s=-1)
    with pytest.raises(ValueError, match=r"Reply\.tokens_out"):
        Reply(tokens_out=-3)
    with pytest.raises(TypeError, match=r"Reply\.content"):
        Reply(content=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Reply.logprobs\[0\]"):
        Reply(logprobs=[("a", -1.0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"Reply.logprobs\[1\]"):
        Reply(logprobs=[("a", -1.0, {}), ("b", "low", {})])  # type: ignore[list-item]


def test_script_refuses_non_replies(server: TestServer) -> None:
    with pytest.raises(TypeError, match="argument 1"):
        server.script("m", Reply(), "ok")  # type: ignore[arg-type]


# -- lifecycle -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [Reply(fault="hang"), Reply(delay_s=600), Reply(content="x" * 100, fault="trickle", trickle_pause_s=600)],
    ids=["hang", "delay", "trickle"],
)
def test_stop_is_prompt_with_a_hanging_request_open(reply: Reply) -> None:
    srv = TestServer().start()
    url = f"{srv.base_url}/chat/completions"
    srv.default(reply)
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(chat(srv, timeout=60).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    srv.wait_for_requests(1)
    srv.stop()
    caller.join(20)
    assert not caller.is_alive(), "the hanging request outlived stop()"
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)
    with pytest.raises(httpx.ConnectError):
        http.post(url, json={"model": "m", "messages": MESSAGES}, timeout=2)


def test_context_manager_and_restart() -> None:
    with TestServer() as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        assert content(chat(srv)) == "ok"
        with pytest.raises(RuntimeError, match="already running"):
            srv.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = srv.port
    srv.start()
    try:
        assert content(chat(srv)) == "ok"
    finally:
        srv.stop()


def test_async_context_manager() -> None:
    async def run() -> str:
        async with TestServer() as srv, httpx.AsyncClient(base_url=srv.base_url) as client:
            srv.script("m", Reply(content="async ok"))
            response = await client.post("/chat/completions", json={"model": "m", "messages": MESSAGES})
            return str(response.json()["choices"][0]["message"]["content"])

    assert asyncio.run(run()) == "async ok"


def test_port_in_use_is_a_clear_error(server: TestServer) -> None:
    with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        TestServer(port=server.port).start()


def test_async_clients_share_the_threaded_server(server: TestServer) -> None:
    server.responder("m", lambda body: Reply(content=str(body["seed"])))

    async def many() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/chat/completions", json={"model": "m", "messages": MESSAGES, "seed": i})
                    for i in range(50)
                )
            )
        return [content(r) for r in responses]

    assert asyncio.run(many()) == [str(i) for i in range(50)]
    assert len(server.requests) == 50


def test_standalone_mode_serves_any_model() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cascade.testing", "--port", "0", "--content", "pong"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        for model in ("a", "b"):
            response = http.post(f"{base_url}/chat/completions", json={"model": model, "messages": MESSAGES})
            assert response.json()["choices"][0]["message"]["content"] == "pong"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
