"""Test data for validator tests: candidates built from Completion objects, samplers that hand out
prepared completions (data standing in for a rung's answers, recorded per call)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, TypeVar

from cascade._types import Completion, TokenLogprob
from cascade.validators import Candidate, Validator, Verdict, run_validator

T = TypeVar("T")

MESSAGES = [{"role": "user", "content": "Classify: 'my card was charged twice'"}]


def run(coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
    async def wrap() -> T:
        return await coro

    return asyncio.run(wrap())


def completion(
    text: str, logprobs: Sequence[TokenLogprob] | None = None, confidence: float | None = None
) -> Completion:
    return Completion(
        text=text,
        tokens_in=10,
        tokens_out=max(1, len(text) // 4),
        logprobs=tuple(logprobs) if logprobs is not None else None,
        confidence=confidence,
    )


def tok(token: str, p: float, *top: tuple[str, float]) -> TokenLogprob:
    """A token with probability ``p`` and alternatives given as (token, probability)."""
    return TokenLogprob(token, math.log(p), tuple((t, math.log(q)) for t, q in top))


class Rung:
    """Prepared answers of one rung: ``sample(k)`` hands out the next k, ``ask`` the next reply."""

    def __init__(self, samples: Sequence[str] = (), replies: Sequence[str] = ()) -> None:
        self.samples = list(samples)
        self.replies = list(replies)
        self.sample_calls: list[int] = []
        self.asked: list[tuple[list[Any], dict[str, Any]]] = []

    async def sample(self, k: int, temperature: float | None = None) -> list[Completion]:
        self.sample_calls.append(k)
        out, self.samples = self.samples[:k], self.samples[k:]
        return [completion(t) for t in out]

    async def ask(self, messages: Sequence[Any], params: dict[str, Any]) -> Completion:
        self.asked.append((list(messages), params))
        return completion(self.replies.pop(0))

    def candidate(self, text: str, logprobs: Sequence[TokenLogprob] | None = None, **kw: Any) -> Candidate:
        return Candidate(
            text=text,
            completion=completion(text, logprobs, kw.pop("confidence", None)),
            messages=MESSAGES,
            rung="small",
            model="m",
            sampler=self.sample,
            asker=self.ask,
            **kw,
        )


def candidate(text: str, logprobs: Sequence[TokenLogprob] | None = None, **kw: Any) -> Candidate:
    return Rung().candidate(text, logprobs, **kw)


def verdict(v: Validator, c: Candidate) -> Verdict:
    return run(run_validator(v, c))
