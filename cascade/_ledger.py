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
spend), the attempt is marked ``budget_overrun`` and no further call is made.
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


def prompt_token_bound(messages: Sequence[Message]) -> int:
    """An upper bound on prompt tokens: bytes of every content plus a chat-template allowance.

    Byte-level BPE and SentencePiece-with-byte-fallback tokenizers never emit more tokens than bytes,
    so this over-estimates (about 4x for English) but never under-estimates the text part.
    """
    total = PER_REQUEST_TOKENS
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content.encode("utf-8"))
        elif content is not None:
            total += len(json.dumps(content, ensure_ascii=False).encode("utf-8"))
        total += PER_MESSAGE_TOKENS
    return total


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

    def settle(self, reserved: float, actual: float) -> None:
        """Release a reservation and charge what the call really cost."""
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual
        if self.cap is not None and actual > reserved + 1e-15:
            self.overrun = True


def bound_call(
    budget: Budget,
    prompt_tokens: int,
    wire: dict[str, Any],
    price_in: float,
    price_out: float,
) -> tuple[dict[str, Any], float]:
    """The params to send and the worst-case cost of one call.

    Under a cap, a call without ``max_tokens`` gets the largest value the remaining budget affords (at
    most :data:`MAX_TOKENS_UNDER_BUDGET`); when not even one output token is affordable the worst case
    is infinite, so the call cannot be reserved."""
    max_tokens = wire.get("max_tokens")
    if budget.cap is not None and max_tokens is None and price_out > 0:
        affordable = (budget.remaining * 1_000_000 - prompt_tokens * price_in) / price_out
        max_tokens = math.floor(max(0.0, min(float(MAX_TOKENS_UNDER_BUDGET), affordable)))
        if max_tokens < 1:
            return wire, math.inf
        wire = {**wire, "max_tokens": max_tokens}
    return wire, call_cost(prompt_tokens, int(max_tokens or 0), price_in, price_out)


def charge(
    completion: Completion, prompt_tokens: int, wire: Mapping[str, Any], price_in: float, price_out: float
) -> tuple[int, int, float]:
    """Tokens and USD to charge for an answer. Without reported usage, an upper bound: the prompt bound
    in, and out one token per UTF-8 byte of the text plus one (capped by ``max_tokens``)."""
    tokens_in, tokens_out = completion.tokens_in, completion.tokens_out
    if tokens_in < 0 or tokens_out < 0:
        tokens_in = prompt_tokens
        tokens_out = len(completion.text.encode("utf-8")) + 1
        cap = wire.get("max_tokens")
        if isinstance(cap, int):
            tokens_out = min(tokens_out, cap)
    cost = (
        completion.cost_usd
        if completion.cost_usd is not None
        else call_cost(tokens_in, tokens_out, price_in, price_out)
    )
    return tokens_in, tokens_out, cost
