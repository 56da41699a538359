"""The account of one request: every attempt, what it cost and why it escalated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic

from typing_extensions import TypeVar

from ._events import AttemptOutcome, RequestOutcome
from ._types import Verdict

T = TypeVar("T", default=Any)
"""What ``result.parsed`` holds: the ``response_model`` given to the Cascade, else Any."""


@dataclass(slots=True)
class Attempt:
    """One try of one rung: the first call, its retries and any samples or extra asks its checks made."""

    index: int
    rung: str
    model: str
    outcome: AttemptOutcome = "error"
    reasons: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    calls: int = 0
    retries: int = 0
    error: dict[str, Any] | None = None
    output: str | None = None
    charged_at_bound: bool = False
    """A call was charged its reserved bound, not reported usage: it was sent and no usable answer came
    back (timeout or reset after sending, a body too large or not JSON), or its reported cost was not a
    finite number >= 0. Providers bill such calls, so the ledger does too."""
    budget_overrun: bool = False
    """A call's actual charge exceeded what was reserved for it (the provider reported more than the bound)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rung": self.rung,
            "model": self.model,
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "verdicts": [v.as_dict() for v in self.verdicts],
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "calls": self.calls,
            "retries": self.retries,
            "error": self.error,
            "output": self.output,
            "charged_at_bound": self.charged_at_bound,
            "budget_overrun": self.budget_overrun,
        }


@dataclass(slots=True)
class CascadeResult(Generic[T]):
    """What ``Cascade.run`` returns. ``cost_usd`` is the sum over every call the request caused.

    ``parsed`` is what the accepted answer's checks parsed: an instance of the Cascade's
    ``response_model`` when it has one (``CascadeResult[Ticket]``), the JSON value of a ``JsonSchema``
    dict, or None."""

    request_id: str
    output: str | None = None
    parsed: T | None = None
    answered_by: str | None = None
    accepted: bool = False
    outcome: RequestOutcome = "exhausted"
    attempts: list[Attempt] = field(default_factory=list)
    escalations: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    """True when rebuilt from the log of an earlier run (``map(..., resume_from=...)``), not run now."""
    log_errors: int = 0
    """Lines of this request that the log could not take (a sink raised: disk full, closed file...)."""

    @property
    def budget_overrun(self) -> bool:
        """Some call cost more than was reserved for it (see ``Attempt.budget_overrun``)."""
        return any(a.budget_overrun for a in self.attempts)

    @property
    def tokens_in(self) -> int:
        return sum(a.tokens_in for a in self.attempts)

    @property
    def tokens_out(self) -> int:
        return sum(a.tokens_out for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "output": self.output,
            "parsed": _plain(self.parsed),
            "answered_by": self.answered_by,
            "accepted": self.accepted,
            "outcome": self.outcome,
            "attempts": [a.to_dict() for a in self.attempts],
            "escalations": self.escalations,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "metadata": self.metadata,
            "resumed": self.resumed,
            "log_errors": self.log_errors,
            "budget_overrun": self.budget_overrun,
        }


def _plain(value: Any) -> Any:
    """A parsed value as plain data (a pydantic model as its dict)."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value
