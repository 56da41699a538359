"""How much CPU the local checks add per answer (no network): prints microseconds per check.

python benchmarks/bench_validators.py
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

from cascade._types import Completion, TokenLogprob
from cascade.validators import Candidate, Choice, Confidence, JsonSchema, SelfConsistency

RECORD = {"name": "Ada Lovelace", "born": 1815, "fields": ["mathematics", "computing"], "ok": True}
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "integer"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "born"],
}


def tokens_of(text: str, size: int = 3) -> tuple[TokenLogprob, ...]:
    """The text cut into 3-character tokens, each with probability 0.9 and two alternatives."""
    return tuple(
        TokenLogprob(text[i : i + size], math.log(0.9), ((text[i : i + size], math.log(0.9)), ("x", math.log(0.05))))
        for i in range(0, len(text), size)
    )


def candidate(
    text: str, logprobs: tuple[TokenLogprob, ...] | None = None, samples: list[str] | None = None
) -> Candidate:
    async def sampler(k: int) -> list[Completion]:
        return [Completion(t, 1, 1) for t in (samples or [])[:k]]

    return Candidate(text, Completion(text, 1, 1, logprobs=logprobs), [], sampler=sampler)


def bench(label: str, fn: Callable[[], Any], n: int = 2000) -> None:
    """Time ``fn`` (a sync check, or one returning an awaitable, awaited inside one event loop)."""

    async def loop() -> float:
        out = fn()
        if asyncio.iscoroutine(out):
            await out
        start = time.perf_counter()
        for _ in range(n):
            out = fn()
            if asyncio.iscoroutine(out):
                await out
        return (time.perf_counter() - start) / n * 1e6

    print(f"{label:<58} {asyncio.run(loop()):9.1f} us/answer")


def main() -> None:
    plain = json.dumps(RECORD)
    prose = f"Sure! Here is the record:\n```json\n{json.dumps(RECORD, indent=2)}\n```\nAnything else?"
    schema = JsonSchema(SCHEMA)
    bench("JsonSchema, bare JSON (dict schema)", lambda: schema.validate(candidate(plain)))
    bench("JsonSchema, JSON in a fence inside prose", lambda: schema.validate(candidate(prose)))
    conf = Confidence(0.5)
    toks = tokens_of(plain)
    bench(
        f"Confidence, value tokens of a {len(toks)}-token JSON answer",
        lambda: conf.validate(candidate(plain, toks)),
        n=500,
    )
    label = '{"label": "billing"}'
    lconf = Confidence(0.5, label_field="label", labels=["billing", "refund"])
    bench("Confidence, label field", lambda: lconf.validate(candidate(label, tokens_of(label))))
    choice = Choice(["billing", "refund"], field="label")
    bench("Choice, JSON field", lambda: choice.validate(candidate(label)))
    sc = SelfConsistency(5, 0.6, key="label")
    samples = [label] * 4
    bench(
        "SelfConsistency k=5, comparison only (samples prepared)",
        lambda: sc.validate(candidate(label, samples=samples)),
        n=500,
    )


if __name__ == "__main__":
    main()
