"""OpenAI-style chat completions: OpenAI, vLLM, Ollama, llama.cpp's server, and the like."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ConfigError, ProviderError
from .._types import Completion, CompletionRequest, TokenLogprob, ToolCall
from ._http import HttpProvider, read_usage

if TYPE_CHECKING:
    import httpx

    from ..validators._schema import ResponseFormatStyle


class OpenAICompatible(HttpProvider):
    """``POST {base_url}/chat/completions``. ``base_url`` includes the version, e.g.
    ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``. ``api_key_env`` names the
    environment variable holding the key (None for local servers that need none).

    ``json_mode`` is how this endpoint constrains output to a JSON schema; when a rung's checks require
    a ``JsonSchema`` and the rung sets no ``response_format``, the engine asks for it in this style:
    ``"openai"`` (structured outputs, non-strict), ``"llama_cpp"`` (llama.cpp's server), ``"json_object"``
    (any JSON), or None (never). ``"auto"``: ``"openai"`` for api.openai.com, else None."""

    name = "openai"

    def __init__(
        self, base_url: str, *, json_mode: ResponseFormatStyle | Literal["auto"] | None = "auto", **kwargs: Any
    ) -> None:
        super().__init__(base_url, **kwargs)
        if json_mode == "auto":
            json_mode = "openai" if "api.openai.com" in self.base_url else None
        if json_mode not in (None, "openai", "llama_cpp", "json_object"):
            raise ConfigError(
                f"json_mode: expected 'openai', 'llama_cpp', 'json_object', 'auto' or None, got {json_mode!r}"
            )
        self.json_mode: ResponseFormatStyle | None = json_mode

    async def complete(self, request: CompletionRequest) -> Completion:
        body: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
        body.update(request.params)
        data = await self._post_json(f"{self.base_url}/chat/completions", body, self.headers)
        return parse_chat_completion(data, self.name)

    def _classify(self, status: int, raw: bytes, headers: httpx.Headers) -> ProviderError:
        """llama.cpp's server answers a prompt over its context with HTTP 400
        ``exceed_context_size_error`` ("exceeds the available context size"): a limit of this rung,
        not a bad request, so it escalates as ``context_length_exceeded``."""
        error = super()._classify(status, raw, headers)
        if status == 400 and error.reason == "bad_request":
            text = raw[:2000].decode("utf-8", "replace").lower()
            if "exceed_context_size_error" in text or "exceeds the available context size" in text:
                return ProviderError("rung_fatal", "context_length_exceeded", str(error), status=status)
        return error


def parse_chat_completion(data: Mapping[str, Any], source: str = "openai") -> Completion:
    """Map an OpenAI chat completion body onto :class:`Completion`; a body without a usable choice is a
    ``bad_response`` (a bad 200 escalates like any other failure). Missing usage is left at -1 for the
    engine to bound."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise ProviderError("rung_fatal", "bad_response", f"{source}: response has no choices")
    choice = choices[0]
    message = choice.get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    if content is None:
        content = choice.get("text")  # legacy completions shape
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ProviderError("rung_fatal", "bad_response", f"{source}: choices[0].message.content is not text")
    tool_calls = _parse_tool_calls(message.get("tool_calls") if isinstance(message, Mapping) else None, source)
    tokens_in, tokens_out = read_usage(data.get("usage"), "prompt_tokens", "completion_tokens")
    finish = choice.get("finish_reason")
    return Completion(
        text=content,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=finish if isinstance(finish, str) else None,
        model=str(data.get("model") or ""),
        logprobs=_parse_logprobs(choice.get("logprobs")),
        tool_calls=tool_calls,
    )


def _parse_tool_calls(raw: Any, source: str) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` as :class:`ToolCall` s; a call without a function name is a ``bad_response``.
    Arguments that are not text (some servers send an object) are kept as their JSON text."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ProviderError("rung_fatal", "bad_response", f"{source}: message.tool_calls is not a list")
    calls: list[ToolCall] = []
    for i, item in enumerate(raw):
        function = item.get("function") if isinstance(item, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ProviderError("rung_fatal", "bad_response", f"{source}: tool_calls[{i}] has no function name")
        assert isinstance(function, Mapping) and isinstance(item, Mapping)
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
        call_id = item.get("id")
        calls.append(ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{i}", name, text))
    return tuple(calls)


def _parse_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(raw, Mapping):
        return None
    content = raw.get("content")
    if not isinstance(content, list):
        return None
    out: list[TokenLogprob] = []
    for item in content:
        if not isinstance(item, Mapping):
            continue
        token, lp = item.get("token"), _logprob(item.get("logprob"))
        if not isinstance(token, str) or lp is None:
            continue
        top: list[tuple[str, float]] = []
        alts = item.get("top_logprobs")
        for alt in alts if isinstance(alts, list) else ():
            if isinstance(alt, Mapping) and isinstance(alt.get("token"), str):
                alt_lp = _logprob(alt.get("logprob"))
                if alt_lp is not None:
                    top.append((alt["token"], alt_lp))
        out.append(TokenLogprob(token, lp, tuple(top)))
    return tuple(out)


def _logprob(value: Any) -> float | None:
    """A logprob as a float, or None when it is not a number a float can hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None
