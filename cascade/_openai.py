"""OpenAI-style chat completions: OpenAI, vLLM, Ollama, llama.cpp's server, and the like."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import ProviderError
from ._http import HttpProvider
from ._types import Completion, CompletionRequest, TokenLogprob


class OpenAICompatible(HttpProvider):
    """``POST {base_url}/chat/completions``. ``base_url`` includes the version, e.g.
    ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``. ``api_key_env`` names the
    environment variable holding the key (None for local servers that need none)."""

    name = "openai"

    async def complete(self, request: CompletionRequest) -> Completion:
        body: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
        body.update(request.params)
        headers = dict(self.headers)
        key = self._secret()
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = await self._post_json(f"{self.base_url}/chat/completions", body, headers)
        return parse_chat_completion(data, self.name)


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
    usage = data.get("usage")
    tokens_in = tokens_out = -1
    if isinstance(usage, Mapping):
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(pt, int) and isinstance(ct, int) and pt >= 0 and ct >= 0:
            tokens_in, tokens_out = pt, ct
    finish = choice.get("finish_reason")
    return Completion(
        text=content,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        finish_reason=finish if isinstance(finish, str) else None,
        model=str(data.get("model") or ""),
        logprobs=_parse_logprobs(choice.get("logprobs")),
    )


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
        token, lp = item.get("token"), item.get("logprob")
        if not isinstance(token, str) or not isinstance(lp, (int, float)):
            continue
        top: list[tuple[str, float]] = []
        for alt in item.get("top_logprobs") or ():
            if (
                isinstance(alt, Mapping)
                and isinstance(alt.get("token"), str)
                and isinstance(alt.get("logprob"), (int, float))
            ):
                top.append((alt["token"], float(alt["logprob"])))
        out.append(TokenLogprob(token, float(lp), tuple(top)))
    return tuple(out)
