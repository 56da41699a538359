"""The internal completion type every provider maps its answer into.

One shape for OpenAI-style, Anthropic and recorded (replay) answers, so validators and the ledger
never look at a provider's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = Mapping[str, Any]
"""An OpenAI-style chat message: ``{"role": "user", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its log-probability and the alternatives the provider returned."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for: ``arguments`` is the JSON text as the model wrote it
    (it may not parse: checking it is a validator's job, see ``cascade.validators.ToolCalls``)."""

    id: str
    name: str
    arguments: str = "{}"

    def as_dict(self) -> dict[str, Any]:
        """The OpenAI wire shape of the call."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the engine asks a provider for: one chat completion on one model."""

    model: str
    messages: Sequence[Message]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer of one model, whatever the provider.

    ``cost_usd`` is set only by providers that know the real price of the call (a replay of recorded
    costs); otherwise the engine prices ``tokens_in``/``tokens_out`` at the rung's prices.
    ``confidence`` is a provider-reported confidence in [0, 1] where there are no token logprobs.
    ``tokens_in``/``tokens_out`` of -1 mean the provider reported no usage: the engine then charges
    an upper bound rather than nothing. ``tool_calls`` are the function calls the model asked for
    (``finish_reason`` is then usually ``"tool_calls"`` and ``text`` may be empty).
    """

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = "stop"
    model: str = ""
    logprobs: tuple[TokenLogprob, ...] | None = None
    cost_usd: float | None = None
    confidence: float | None = None
    latency_ms: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
