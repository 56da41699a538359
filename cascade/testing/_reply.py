"""What the test server answers: one :class:`Reply` per request, scripted by the test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FAULTS: tuple[str, ...] = (
    "reset",
    "close",
    "timeout",
    "hang",
    "trickle",
    "invalid_json",
    "html",
    "no_choices",
    "no_usage",
    "huge",
    "server_error",
    "rate_limit",
    "rate_limit_no_header",
    "bad_gateway",
    "unavailable",
)
"""Every fault name a :class:`Reply` (or ``TestServer.fault_rate``) accepts."""

HUGE_BYTES = 10 * 1024 * 1024
"""Size of the ``"huge"`` fault's body: a valid completion whose content is ~10 MB."""


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    ``status`` other than 200 sends an error body (``error``: OpenAI-style ``{"message", "type", "code"}``,
    a sensible default per status when None). ``tokens_in``/``tokens_out`` default to ~chars/4+1 of the
    prompt and of ``content``. ``logprobs`` are ``(token, logprob, {alternative: logprob})`` and are only
    returned when the request asks ``logprobs: true`` (generated with logprob 0.0 when None).
    ``tool_calls`` are ``(function name, arguments JSON text)`` pairs the answer calls (ids ``call_1``...;
    ``finish_reason`` then defaults to ``"tool_calls"``, Anthropic's ``tool_use``).
    ``delay_s`` waits before the headers; ``fault`` (one of :data:`FAULTS`) breaks the answer on purpose.
    ``trickle_bytes``/``trickle_pause_s`` shape the ``"trickle"`` fault.
    """

    content: str = "ok"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str = "stop"
    logprobs: list[tuple[str, float, dict[str, float]]] | None = None
    delay_s: float = 0.0
    fault: str | None = None
    trickle_bytes: int = 16
    trickle_pause_s: float = 0.02
    tool_calls: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        calls = tuple(tuple(c) for c in self.tool_calls)
        if not all(len(c) == 2 and isinstance(c[0], str) and c[0] and isinstance(c[1], str) for c in calls):
            raise ValueError(f"Reply.tool_calls must be (name, arguments JSON text) pairs, got {self.tool_calls!r}")
        object.__setattr__(self, "tool_calls", calls)
        if calls and self.finish_reason == "stop":
            object.__setattr__(self, "finish_reason", "tool_calls")
        if not isinstance(self.content, str):
            raise TypeError(f"Reply.content must be a str, got {self.content!r:.80}")
        if not isinstance(self.status, int) or isinstance(self.status, bool) or not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status must be an HTTP status 100..599, got {self.status!r}")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"Reply.fault={self.fault!r} is not a known fault; use one of {FAULTS}")
        for name in ("tokens_in", "tokens_out"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"Reply.{name} must be a non-negative int or None, got {value!r}")
        if not isinstance(self.delay_s, (int, float)) or self.delay_s < 0:
            raise ValueError(f"Reply.delay_s must be a number >= 0, got {self.delay_s!r}")
        if not isinstance(self.trickle_bytes, int) or self.trickle_bytes < 1:
            raise ValueError(f"Reply.trickle_bytes must be an int >= 1, got {self.trickle_bytes!r}")
        if not isinstance(self.trickle_pause_s, (int, float)) or self.trickle_pause_s < 0:
            raise ValueError(f"Reply.trickle_pause_s must be a number >= 0, got {self.trickle_pause_s!r}")
        if self.error is not None and not isinstance(self.error, Mapping):
            raise TypeError(f"Reply.error must be a dict {{message, type, code}}, got {self.error!r}")
        if self.logprobs is not None:
            for i, item in enumerate(self.logprobs):
                if not (
                    isinstance(item, (tuple, list))
                    and len(item) == 3
                    and isinstance(item[0], str)
                    and isinstance(item[1], (int, float))
                    and isinstance(item[2], Mapping)
                ):
                    raise ValueError(f"Reply.logprobs[{i}] must be (token, logprob, {{alt: logprob}}), got {item!r}")


class Headers(dict[str, str]):
    """A dict of request headers with lower-cased keys that also finds ``"Authorization"`` and the like."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received. ``headers`` looks names up case-insensitively; ``body`` is the
    parsed JSON object ({} when empty or not an object); ``model`` is ``body["model"]`` when a str."""

    path: str
    model: str | None
    body: dict[str, Any]
    headers: Headers
