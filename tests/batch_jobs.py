"""The cascade the distributed-batch tests run on their workers, and the server's side of it.

A factory is pickled to the workers (Ray actors, Dask processes): :class:`ServerLadder` is a frozen
dataclass holding only the server's URL, so nothing unpicklable travels. ``answer`` is the server's
responder: the label of ticket ``n`` is ``L<n>``; the small rung gives every fifth ticket an answer
that fails the schema, so it escalates.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade import Cascade, OpenAICompatible, RetryPolicy, Rung
from cascade._logs._read import read_log
from cascade.testing import Reply
from cascade.validators import JsonSchema

LABEL = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
BUDGET_USD = 0.002
"""Each request's cap."""
PROMPT = "Ticket {id}: {title}"


def tickets(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"printer {i} is on fire"} for i in range(n)]


def answer(body: dict[str, Any], delay_s: float = 0.0) -> Reply:
    number = re.match(r"Ticket (\d+):", body["messages"][-1]["content"])
    n = int(number.group(1)) if number else -1
    if body["model"] == "small-m" and n % 5 == 0:
        return Reply(content='{"lable": "oops"}', delay_s=delay_s)  # fails the schema: escalates
    return Reply(content=f'{{"label": "L{n}"}}', delay_s=delay_s)


@dataclass(frozen=True)
class ServerLadder:
    """``factory(log) -> Cascade``: two rungs on the test server, each request capped at BUDGET_USD."""

    base_url: str
    budget_usd: float | None = BUDGET_USD

    def __call__(self, log: str | None) -> Cascade:
        server = OpenAICompatible(self.base_url)
        quick = RetryPolicy(attempts=3, initial_wait_s=0.01, max_wait_s=0.05)
        rungs = [
            Rung(name="small", provider=server, model="small-m", price_in=1, price_out=2, retry=quick),
            Rung(name="large", provider=server, model="large-m", price_in=20, price_out=60, retry=quick),
        ]
        return Cascade(
            rungs,
            validators=JsonSchema(LABEL),
            log=log,
            log_content="full",
            budget_usd=self.budget_usd,
            on_exhausted="best_effort",
        )


def events(log_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Every ``kind`` event of every log in ``log_dir``, each with the file it came from."""
    out = []
    for path in sorted(log_dir.glob("*.jsonl*")):
        out += [{**e, "_file": path.name} for e in read_log(path).events if e["event"] == kind]
    return out


def answered_twice(log_dir: Path) -> Counter[str]:
    """Request ids with more than one request event across the logs."""
    counts = Counter(e["request_id"] for e in events(log_dir, "request"))
    return Counter({rid: n for rid, n in counts.items() if n > 1})
