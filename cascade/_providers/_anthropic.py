"""Anthropic's Messages API (``POST /v1/messages``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._errors import ProviderError
from .._types import Completion, CompletionRequest, ToolCall
from ._http import HttpProvider, read_usage

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
_STOP_REASONS = {
    "tool_use": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}


class Anthropic(HttpProvider):
    """Claude models. System messages become the ``system`` field; ``max_tokens`` (required by the API)
    defaults to 1024; ``stop`` maps to ``stop_sequences``. The API returns no token logprobs, so
    confidence checks on this provider report ``confidence_unavailable``."""

    name = "anthropic"
    key_header = "x-api-key"
    key_prefix = ""

    def __init__(
        self,
        base_url: str = "https://api.anthropic.com",
        *,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key_env=api_key_env, **kwargs)
        self._url = f"{self.base_url}/messages" if self.base_url.endswith("/v1") else f"{self.base_url}/v1/messages"

    async def complete(self, request: CompletionRequest) -> Completion:
        params = dict(request.params)
        system = [str(m.get("content", "")) for m in request.messages if m.get("role") == "system"]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m) for m in request.messages if m.get("role") != "system"],
            "max_tokens": params.pop("max_tokens", None) or DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = "\n\n".join(system)
        stop = params.pop("stop", None)
        if stop is not None:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        tools = params.pop("tools", None)
        if tools:
            body["tools"] = [_tool(t) for t in tools]
        choice = params.pop("tool_choice", None)
        if choice is not None and tools:
            body["tool_choice"] = _tool_choice(choice)
        user = params.pop("user", None)
        if isinstance(user, str):
            body["metadata"] = {"user_id": user}
        for unsupported in ("logprobs", "top_logprobs", "response_format", "seed", "n", "parallel_tool_calls"):
            params.pop(unsupported, None)
        params.pop("metadata", None)  # OpenAI's free-form metadata has no Anthropic counterpart
        body.update(params)
        headers = {"anthropic-version": ANTHROPIC_VERSION, **self.headers}
        data = await self._post_json(self._url, body, headers)
        return parse_message(data)


def _message(m: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat message in Anthropic's shape: tool results become ``tool_result`` blocks, an
    assistant's tool calls ``tool_use`` blocks."""
    role = m.get("role")
    if role == "tool":
        block = {"type": "tool_result", "tool_use_id": m.get("tool_call_id"), "content": m.get("content") or ""}
        return {"role": "user", "content": [block]}
    calls = m.get("tool_calls")
    if role == "assistant" and isinstance(calls, list) and calls:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
        for call in calls:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = {}
            blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
        return {"role": "assistant", "content": blocks}
    return {"role": role, "content": m.get("content")}


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``{"type": "function", "function": {...}}`` tool as an Anthropic tool."""
    inner = tool.get("function")
    function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else tool
    out = {"name": function.get("name"), "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, Mapping):
        function = choice.get("function") or {}
        return {"type": "tool", "name": function.get("name")}
    return {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}


def parse_message(data: Mapping[str, Any]) -> Completion:
    content = data.get("content")
    if not isinstance(content, list):
        raise ProviderError("rung_fatal", "bad_response", "anthropic: response has no content list")
    text = "".join(
        str(block.get("text", "")) for block in content if isinstance(block, Mapping) and block.get("type") == "text"
    )
    calls = tuple(
        ToolCall(str(block.get("id") or f"call_{i}"), str(block["name"]), json.dumps(block.get("input") or {}))
        for i, block in enumerate(content)
        if isinstance(block, Mapping) and block.get("type") == "tool_use" and isinstance(block.get("name"), str)
    )
    tokens_in, tokens_out = read_usage(data.get("usage"), "input_tokens", "output_tokens")
    stop = data.get("stop_reason")
    return Completion(
        text=text,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=_STOP_REASONS.get(str(stop), str(stop) if stop else None),
        model=str(data.get("model") or ""),
        tool_calls=calls,
    )
