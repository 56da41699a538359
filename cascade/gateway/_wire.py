"""The OpenAI chat-completions wire format of the gateway: a request body into cascade arguments, a
:class:`CascadeResult` into a completion, its stream chunks, and errors in OpenAI's shape."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._result import CascadeResult

PARAMS = frozenset(
    {"temperature", "top_p", "max_tokens", "response_format", "seed", "stop", "logprobs", "top_logprobs"}
    | {"tools", "tool_choice", "parallel_tool_calls", "n", "user"}
)
"""Body fields that become the cascade's request params (``RequestParams``), for every rung."""
EXTRA = frozenset({"metadata", "presence_penalty", "frequency_penalty", "logit_bias", "service_tier", "store"})
"""Body fields passed through to the rungs as they are (``RequestParams.extra``)."""
OWN = frozenset({"model", "messages", "stream", "stream_options", "max_completion_tokens"})
_WORDS = re.compile(r"\s*\S+|\s+")


class WireError(Exception):
    """A request the gateway refuses, already in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        cascade: dict[str, Any] | None = None,
        before_any_call: bool = False,
        **more: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.before_any_call = before_any_call
        self.body = error_body(message, type=type, code=code, **more)
        if cascade is not None:
            self.body["cascade"] = cascade
        self.headers = dict(headers or {})
        if status in (402, 422, 429):  # the OpenAI clients would retry a 429: a spent cap stays spent
            self.headers["x-should-retry"] = "false"


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None, **more: Any
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code, **more}}


@dataclass(frozen=True)
class ChatRequest:
    """A parsed ``POST /v1/chat/completions`` body."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


def parse_chat(raw: bytes) -> ChatRequest:
    """The body as a :class:`ChatRequest`, or a 400 naming the field and the value."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise WireError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WireError(400, f"request body: expected a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(
            400, f"model: expected a model name such as 'cascade/default', got {model!r:.80}", param="model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise WireError(400, f"messages: expected a list of message objects, got {messages!r:.80}", param="messages")
    unknown = sorted(set(body) - PARAMS - EXTRA - OWN)
    if unknown:
        raise WireError(400, f"{unknown[0]}: unknown request field (value {body[unknown[0]]!r:.80})", param=unknown[0])
    params = {k: body[k] for k in PARAMS if body.get(k) is not None}
    if body.get("max_completion_tokens") is not None:
        params.setdefault("max_tokens", body["max_completion_tokens"])
    extra = {k: body[k] for k in EXTRA if body.get(k) is not None}
    if extra:
        params["extra"] = extra
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError(400, f"stream: expected true or false, got {stream!r:.80}", param="stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    metadata = body.get("metadata")
    if metadata is not None and not _is_metadata(metadata):
        raise WireError(
            400,
            f"metadata: expected at most 16 string values of <= 512 characters, got {metadata!r:.80}",
            param="metadata",
        )
    user = body.get("user")
    return ChatRequest(
        model, messages, params, dict(metadata or {}), stream, include_usage, user if isinstance(user, str) else None
    )


def _is_metadata(value: Any) -> bool:
    """OpenAI's rule for ``metadata`` (it lands in the escalation log: keep it small)."""
    return (
        isinstance(value, dict)
        and len(value) <= 16
        and all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in value.items())
    )


@dataclass(frozen=True)
class Answer:
    """What the client gets for one result: the text and calls, which model said them, the account."""

    id: str
    model: str
    text: str | None
    tool_calls: list[dict[str, Any]]
    usage: dict[str, int]
    cascade: dict[str, Any]
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def answer_of(result: CascadeResult, model: str, cascade_name: str) -> Answer:
    """``model`` is the answering rung's model; the ``cascade`` object carries the account."""
    tokens_in, tokens_out = result.tokens_in, result.tokens_out
    return Answer(
        id=f"chatcmpl-{result.request_id}",
        model=model,
        text=result.output if result.output or not result.tool_calls else None,
        tool_calls=[c.as_dict() for c in result.tool_calls],
        usage={"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
        cascade=account(result, cascade_name),
    )


def account(result: CascadeResult, cascade_name: str) -> dict[str, Any]:
    """The ``cascade`` object of a response body: what the headers say, and each attempt's reasons."""
    return {
        "name": cascade_name,
        "request_id": result.request_id,
        "answered_by": result.answered_by,
        "accepted": result.accepted,
        "outcome": result.outcome,
        "cost_usd": result.cost_usd,
        "escalations": result.escalations,
        "attempts": [
            {"rung": a.rung, "model": a.model, "outcome": a.outcome, "reasons": a.reasons} for a in result.attempts
        ],
    }


def headers_of(result: CascadeResult) -> dict[str, str]:
    return {
        "x-cascade-request-id": result.request_id,
        "x-cascade-answered-by": result.answered_by or "",
        "x-cascade-cost-usd": f"{result.cost_usd:.8f}",
        "x-cascade-escalations": str(result.escalations),
        "x-cascade-accepted": "true" if result.accepted else "false",
    }


def completion_body(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
        "usage": answer.usage,
        "cascade": answer.cascade,
    }


def stream_chunks(answer: Answer, *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The accepted answer as ``chat.completion.chunk`` s: the role, the text a word at a time, each tool
    call, the finish reason (with the ``cascade`` account), then usage when asked. Every chunk names
    the answering model."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": answer.model,
            "choices": [choice],
            **more,
        }

    yield chunk({"role": "assistant", "content": ""})
    for piece in _WORDS.findall(answer.text or ""):
        yield chunk({"content": piece})
    for i, call in enumerate(answer.tool_calls):
        yield chunk({"tool_calls": [{"index": i, **call}]})
    yield chunk({}, answer.finish_reason, cascade=answer.cascade)
    if include_usage:
        yield {
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": answer.model,
            "choices": [],
            "usage": answer.usage,
        }


def sse(events: Iterator[Mapping[str, Any]]) -> Iterator[bytes]:
    """Server-sent events as OpenAI sends them, ending with ``data: [DONE]``."""
    for event in events:
        yield b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
