"""One cost ledger per request, and the spend cap.

The guarantee (tested with hypothesis in tests/test_budget.py): with ``budget_usd=B``, the sum of
``cost_usd`` over every call a request makes is at most B, provided each provider reports usage no
larger than the bound the engine computed before the call, that is ``tokens_in <= prompt bound`` and
``tokens_out <= max_tokens`` sent with the call. The engine always sends ``max_tokens`` under a budget
(the rung's value, or the largest value the remaining budget affords), and the default prompt bound is
the UTF-8 byte count of the messages plus a per-message allowance, which no byte-level tokenizer
exceeds. A call whose bound does not fit in what is left is not made: the request stops with reason
``budget_exhausted``. Calls running at once (self-consistency samples) reserve their bounds together.
If a provider ever reports more than its bound, the excess is still charged (the ledger never hides
spend), the attempt and the request are marked ``budget_overrun`` (accepted or not) and no further call
is made.

What the bound covers: the messages (text parts by their bytes; every non-text part, such as an image,
by its JSON plus :data:`NON_TEXT_PART_TOKENS`) and every request param that reaches the prompt
(``tools``, ``response_format`` including the schema the engine adds itself, anything provider-specific),
by the bytes of its JSON. A call that was sent and never answered (timeout, reset, a body too large or not
JSON) is charged its whole reserved bound (``charged_at_bound``), since providers bill the tokens they
generated; so is a call whose reported cost is NaN, infinite or negative. Reported usage of 0 output tokens
for a non-empty answer, or usage with duplicate keys, is not believed: the bound is charged instead. Each
call, retries included, reserves its own bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._types import Completion, Message

TokenCounter = Callable[[Sequence[Message]], int]
MAX_TOKENS_UNDER_BUDGET = 4096
"""``max_tokens`` sent under a budget when the rung sets none (the budget may afford less)."""

PER_MESSAGE_TOKENS = 16
PER_REQUEST_TOKENS = 16
NON_TEXT_PART_TOKENS = 50_000
"""Allowance for one non-text content part (image, audio, file) on top of its JSON: the largest image
bill among the common APIs (OpenAI's small models count up to about 48k tokens for one high-detail
image). Pass your own ``token_counter`` for a tighter bound."""
_SCALAR_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "seed", "logprobs", "top_logprobs", "n", "stop"})


def prompt_token_bound(messages: Sequence[Message]) -> int:
    """An upper bound on prompt tokens: bytes of every content plus a chat-template allowance.

    Byte-level BPE and SentencePiece-with-byte-fallback tokenizers never emit more tokens than bytes,
    so this over-estimates (about 4x for English) but never under-estimates the text part.
    """
    total = PER_REQUEST_TOKENS
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += _utf8_len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, Mapping) and part.get("type") == "text" else None
                if isinstance(text, str):
                    total += _utf8_len(text) + PER_MESSAGE_TOKENS
                else:
                    total += _json_len(part) + NON_TEXT_PART_TOKENS
        elif content is not None:
            total += _json_len(content)
        for key, value in m.items():  # tool calls, names...: whatever else the message carries
            if key not in ("role", "content") and value is not None:
                total += _json_len(value)
        total += PER_MESSAGE_TOKENS
    return total


def params_token_bound(wire: Mapping[str, Any]) -> int:
    """An upper bound on the prompt tokens the request params add: the bytes of the JSON of every param
    that is not a plain sampling setting (``tools``, ``response_format`` with its schema, extras)."""
    return sum(_json_len(v) + PER_MESSAGE_TOKENS for k, v in wire.items() if k not in _SCALAR_PARAMS)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _json_len(value: Any) -> int:
    return _utf8_len(json.dumps(value, ensure_ascii=False, default=str))


def call_cost(tokens_in: int, tokens_out: int, price_in: float, price_out: float) -> float:
    """USD for one call at prices given in USD per million tokens."""
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


class Budget:
    """Spent and reserved money of one request against an optional cap."""

    __slots__ = ("cap", "overrun", "reserved", "spent")

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.reserved = 0.0
        self.overrun = False

    @property
    def remaining(self) -> float:
        if self.cap is None:
            return float("inf")
        return self.cap - self.spent - self.reserved

    def reserve(self, amount: float) -> bool:
        """Hold ``amount`` for a call about to be made; False (nothing held) if it does not fit."""
        if self.cap is not None and (self.overrun or amount > self.remaining + 1e-15):
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> bool:
        """Release a reservation and charge what the call really cost; True when that was more than the
        reservation (an overrun, whether or not there is a cap)."""
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual
        over = actual > reserved + 1e-15 and math.isfinite(reserved)
        if over and self.cap is not None:
            self.overrun = True
        return over


def bound_call(
    budget: Budget,
    prompt_tokens: int,
    wire: dict[str, Any],
    price_in: float,
    price_out: float,
    share: int = 1,
) -> tuple[dict[str, Any], float]:
    """The params to send and the worst-case cost of one call.

    Under a cap, a call without ``max_tokens`` gets the largest value its ``share`` of the remaining
    budget affords (``share`` calls made at once, such as self-consistency samples, split what is left;
    at most :data:`MAX_TOKENS_UNDER_BUDGET`); when not even one output token is affordable the worst
    case is infinite, so the call cannot be reserved."""
    max_tokens = wire.get("max_tokens")
    if budget.cap is not None and max_tokens is None and price_out > 0:
        affordable = (budget.remaining / max(1, share) * 1_000_000 - prompt_tokens * price_in) / price_out
        max_tokens = math.floor(max(0.0, min(float(MAX_TOKENS_UNDER_BUDGET), affordable)))
        if max_tokens < 1:
            return wire, math.inf
        wire = {**wire, "max_tokens": max_tokens}
    return wire, call_cost(prompt_tokens, int(max_tokens or 0), price_in, price_out)


def charge(
    completion: Completion,
    prompt_tokens: int,
    wire: Mapping[str, Any],
    price_in: float,
    price_out: float,
    worst: float = math.inf,
) -> tuple[int, int, float, bool]:
    """Tokens and USD to charge for an answer, and whether that is the reserved bound ``worst``.

    Without believable usage (missing, 0 prompt tokens, or 0 output tokens for a non-empty answer), an
    upper bound: the prompt bound in, and out one token per UTF-8 byte of the text plus one (capped by
    ``max_tokens``). A reported cost that is not a finite number >= 0 is replaced by ``worst``."""
    tokens_in, tokens_out = completion.tokens_in, completion.tokens_out
    if tokens_in <= 0 or tokens_out < 0 or (tokens_out == 0 and completion.text):
        tokens_in = prompt_tokens
        tokens_out = _utf8_len(completion.text) + 1
        cap = wire.get("max_tokens")
        if isinstance(cap, int):
            tokens_out = min(tokens_out, cap)
    reported = completion.cost_usd
    if reported is None:
        return tokens_in, tokens_out, call_cost(tokens_in, tokens_out, price_in, price_out), False
    number = isinstance(reported, (int, float)) and not isinstance(reported, bool)
    if number and math.isfinite(reported) and reported >= 0:
        return tokens_in, tokens_out, float(reported), False
    bound = worst if math.isfinite(worst) else call_cost(tokens_in, tokens_out, price_in, price_out)
    return tokens_in, tokens_out, bound, True
