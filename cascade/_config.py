"""Every setting object in one place (as httpx's ``_config.py``): immutable policies, validated at
construction with a :class:`~cascade.ConfigError` that names the field and the value.

They say *how* something behaves; the state they govern (a rung's open circuit, its idle count) lives
with the code that uses them (``cascade._breaker``, ``cascade._idle``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigError, ProviderError, validation_message

NOT_RUNG_HEALTH = frozenset({"context_length_exceeded", "content_policy"})
"""Failure reasons about the request, not the rung: they never trip a breaker."""


class Settings(BaseModel):
    """A pydantic model whose bad values raise :class:`~cascade.ConfigError` (one line per field), not
    pydantic's ``ValidationError``: one exception type for every configuration mistake."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(validation_message(type(self).__name__, exc)) from None


class RequestParams(Settings):
    """Request parameters sent with every call of a rung (OpenAI names). Unknown names are refused;
    put provider-specific ones in ``extra``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The non-empty parameters as one flat dict (``extra`` merged last)."""
        out = {k: v for k, v in self.__dict__.items() if v is not None and k != "extra"}
        out.update(self.extra)
        return out


class RetryPolicy(Settings):
    """How transient failures are retried on the same rung (tenacity does the retrying)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    attempts: int = Field(default=3, ge=1, le=20)
    max_delay_s: float = Field(default=60.0, gt=0)
    initial_wait_s: float = Field(default=0.5, ge=0)
    max_wait_s: float = Field(default=20.0, ge=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)


@dataclass(frozen=True)
class CircuitBreaker:
    """The policy (immutable, shareable between rungs); each Cascade keeps its own state per rung.
    ``clock`` is for tests (monotonic seconds)."""

    failures: int = 5
    window_s: float = 30.0
    cooldown_s: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.failures, bool) or not isinstance(self.failures, int) or self.failures < 1:
            raise ConfigError(f"CircuitBreaker.failures: expected an integer >= 1, got {self.failures!r}")
        for name in ("window_s", "cooldown_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"CircuitBreaker.{name}: expected a finite number of seconds > 0, got {value!r}")

    @staticmethod
    def counts(exc: ProviderError) -> bool:
        """Does this failure say something about the rung's health?"""
        return exc.kind != "caller" and exc.reason not in NOT_RUNG_HEALTH


@dataclass(frozen=True)
class SkipIdle:
    """The policy: skip after ``after`` consecutive visits with nothing accepted; probe every ``probe_every``."""

    after: int = 20
    probe_every: int = 10

    def __post_init__(self) -> None:
        for name in ("after", "probe_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SkipIdle.{name}: expected an integer >= 1, got {value!r}")
