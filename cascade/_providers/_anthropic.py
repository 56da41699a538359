"""Anthropic's Messages API (``POST /v1/messages``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ProviderError
from .._types import Completion, CompletionRequest
from ._http import HttpProvider, read_usage

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}


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
            "messages": [
                {"role": m.get("role"), "content": m.get("content")}
                for m in request.messages
                if m.get("role") != "system"
            ],
            "max_tokens": params.pop("max_tokens", None) or DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = "\n\n".join(system)
        stop = params.pop("stop", None)
        if stop is not None:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        for unsupported in ("logprobs", "top_logprobs", "response_format", "seed", "n"):
            params.pop(unsupported, None)
        body.update(params)
        headers = {"anthropic-version": ANTHROPIC_VERSION, **self.headers}
        data = await self._post_json(self._url, body, headers)
        return parse_message(data)


def parse_message(data: Mapping[str, Any]) -> Completion:
    content = data.get("content")
    if not isinstance(content, list):
        raise ProviderError("rung_fatal", "bad_response", "anthropic: response has no content list")
    text = "".join(
        str(block.get("text", "")) for block in content if isinstance(block, Mapping) and block.get("type") == "text"
    )
    tokens_in, tokens_out = read_usage(data.get("usage"), "input_tokens", "output_tokens")
    stop = data.get("stop_reason")
    return Completion(
        text=text,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=_STOP_REASONS.get(str(stop), str(stop) if stop else None),
        model=str(data.get("model") or ""),
    )
