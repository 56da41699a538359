"""The error taxonomy: what failed, and therefore what the engine does next.

* ``transient``: retried on the same rung (429, 5xx, timeouts, connection errors).
* ``rung_fatal``: the rung cannot answer this request; escalate at once (401/403, unknown model,
  context length exceeded, content policy, retries exhausted, a 200 whose body is unusable).
* ``caller``: the request itself is malformed; raise without burning the ladder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ._result import CascadeResult

ErrorKind = Literal["transient", "rung_fatal", "caller"]


class CascadeError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(CascadeError, ValueError):
    """A ladder, rung, provider or option is misconfigured; the message names the field and value."""


class ProviderError(CascadeError):
    """A provider call failed. ``reason`` is a stable code that lands in the escalation log."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_billed: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.reason = reason
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.maybe_billed = maybe_billed
        """The request went out and no usable answer came back (timeout or reset after sending, a body
        too large or not JSON): the provider may have billed the tokens, so the engine charges the call's
        reserved bound."""

    def __repr__(self) -> str:
        return f"ProviderError(kind={self.kind!r}, reason={self.reason!r}, status={self.status!r})"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "reason": self.reason, "status": self.status, "message": self.message}


class CallerError(ProviderError):
    """The caller built a request the provider rejects (HTTP 400/422 that is not about length)."""

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__("caller", reason, message, status=status)


class RequestError(CascadeError, ValueError):
    """The messages or per-request options given to ``run`` are malformed; names the field and value."""


class BudgetExhausted(CascadeError):
    """The next call's worst-case cost does not fit in what is left of the request's budget."""


class CascadeExhausted(CascadeError):
    """Every rung failed or was skipped; ``result`` holds the full account of what was tried."""

    def __init__(self, result: CascadeResult) -> None:
        reasons = ", ".join(sorted({r for a in result.attempts for r in a.reasons})) or "none"
        super().__init__(
            f"request {result.request_id}: no rung accepted an answer after {len(result.attempts)} "
            f"attempt(s), ${result.cost_usd:.6f} spent; reasons: {reasons}"
        )
        self.result = result


def validation_message(where: str, exc: ValidationError) -> str:
    """One line naming each bad field and its value, from a pydantic ``ValidationError``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "value_error":  # our own validators' messages already name field and value
            cause: Any = (err.get("ctx") or {}).get("error", err["msg"])
            text = str(cause)
            parts.append(text if isinstance(cause, ConfigError) else f"{where}.{loc}: {text}" if loc else text)
            continue
        got: Any = err.get("input")
        parts.append(f"{where}.{loc}: {err['msg']} (got {got!r:.80})" if loc else f"{where}: {err['msg']}")
    return "; ".join(parts)
