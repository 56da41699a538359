"""Wire formats the test server speaks: OpenAI chat completions and Anthropic messages, their error
bodies, token estimates and (generated) logprobs. Pure functions of (request body, Reply)."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from ._reply import Reply

_ids = itertools.count(1)
_TOKEN_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")

# status -> (OpenAI type, OpenAI code, message)
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
    403: ("permission_error", None, "You are not allowed to use this model"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist"),
    408: ("timeout", None, "Request timed out"),
    413: ("invalid_request_error", "request_too_large", "Request too large"),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request"),
    502: ("server_error", "bad_gateway", "Bad gateway"),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet"),
    504: ("server_error", "gateway_timeout", "Gateway timeout"),
}
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

HTML_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def estimate_tokens(text: str) -> int:
    """~4 characters per token, at least 1: close enough for cost arithmetic in tests."""
    return len(text) // 4 + 1


def prompt_text(body: Mapping[str, Any]) -> str:
    """All text of the request's messages (and Anthropic ``system``), for the prompt token estimate."""
    parts: list[str] = []
    system = body.get("system")
    if system is not None:
        parts.append(_text_of(system))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                parts.append(_text_of(message.get("content")))
    return "".join(parts)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def split_tokens(text: str) -> list[str]:
    """Words with their leading whitespace, punctuation marks one by one; ``"".join`` gives ``text`` back."""
    return _TOKEN_RE.findall(text)


def openai_logprobs(body: Mapping[str, Any], reply: Reply) -> dict[str, Any] | None:
    """``choices[0].logprobs`` when the request asked ``logprobs: true``, else None.

    Scripted ``Reply.logprobs`` are returned as given, alternatives sorted best first and cut to the
    request's ``top_logprobs`` when it is an int. Without scripted ones, the content is split into word
    tokens, each with logprob 0.0 (probability 1) and, when ``top_logprobs`` > 0, itself as the only
    alternative.
    """
    if body.get("logprobs") is not True:
        return None
    top_n = body.get("top_logprobs")
    limit = top_n if isinstance(top_n, int) and not isinstance(top_n, bool) else None
    items: list[dict[str, Any]] = []
    if reply.logprobs is not None:
        for token, logprob, alternatives in reply.logprobs:
            ranked = sorted(alternatives.items(), key=lambda kv: -kv[1])
            if limit is not None:
                ranked = ranked[:limit]
            items.append(_lp_item(token, logprob, ranked))
    else:
        for token in split_tokens(reply.content):
            items.append(_lp_item(token, 0.0, [(token, 0.0)] if limit else []))
    return {"content": items, "refusal": None}


def _lp_item(token: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": float(logprob),
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": float(lp), "bytes": list(t.encode())} for t, lp in top],
    }


def openai_completion(
    body: Mapping[str, Any], replies: list[Reply], *, choices: bool = True, usage: bool = True
) -> dict[str, Any]:
    """An OpenAI chat completion; one choice per reply (``n`` > 1 asks for several)."""
    reply = replies[0]
    tokens_in = reply.tokens_in if reply.tokens_in is not None else estimate_tokens(prompt_text(body))
    tokens_out = sum(estimate_tokens(r.content) if r.tokens_out is None else r.tokens_out for r in replies)
    data: dict[str, Any] = {
        "id": f"chatcmpl-{next(_ids):08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_cascade_testing",
    }
    if choices:
        data["choices"] = [
            {
                "index": i,
                "message": _openai_message(r),
                "logprobs": openai_logprobs(body, r),
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(replies)
        ]
    if usage:
        data["usage"] = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
    return data


def anthropic_message(
    body: Mapping[str, Any], reply: Reply, *, content: bool = True, usage: bool = True
) -> dict[str, Any]:
    """An Anthropic Messages API answer; ``finish_reason="length"`` becomes ``stop_reason="max_tokens"``."""
    tokens_in = reply.tokens_in if reply.tokens_in is not None else estimate_tokens(prompt_text(body))
    tokens_out = reply.tokens_out if reply.tokens_out is not None else estimate_tokens(reply.content)
    stop = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}.get(
        reply.finish_reason, reply.finish_reason
    )
    data: dict[str, Any] = {
        "id": f"msg_{next(_ids):08d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
    }
    if content:
        data["content"] = [{"type": "text", "text": reply.content}] if reply.content or not reply.tool_calls else []
        for i, (name, arguments) in enumerate(reply.tool_calls, 1):
            data["content"].append({"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": _loads(arguments)})
    data["stop_reason"] = stop
    data["stop_sequence"] = None
    if usage:
        data["usage"] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    return data


def _openai_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["content"] = reply.content or None
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(reply.tool_calls, 1)
        ]
    return message


def _loads(text: str) -> Any:
    """Scripted arguments as Anthropic's ``input`` object (text that does not parse is sent as a string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def openai_error(status: int, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``; missing fields get the status's default."""
    default_type, default_code, default_message = _OPENAI_ERRORS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None, _phrase(status))
    )
    given = dict(error or {})
    return {
        "error": {
            "message": given.pop("message", default_message),
            "type": given.pop("type", default_type),
            "param": given.pop("param", None),
            "code": given.pop("code", default_code),
            **given,
        }
    }


def anthropic_error(status: int, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}``; a scripted error keeps its message."""
    default_type = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    given = error or {}
    message = given.get("message") or _OPENAI_ERRORS.get(status, ("", None, _phrase(status)))[2]
    return {"type": "error", "error": {"type": given.get("type") or default_type, "message": message}}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
