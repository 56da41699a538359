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
from collections.abc import Callable, Sequence

from ._types import Message

TokenCounter = Callable[[Sequence[Message]], int]

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
