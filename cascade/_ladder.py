"""The ladder in code: immutable rungs from cheapest to strongest, validated at construction.

The models are built on first use (``defer_build``), not at ``import cascade``: building them is most
of this module's import time, and tools that only read logs never need them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ._config import CircuitBreaker, RequestParams, RetryPolicy, Settings
from ._errors import ConfigError
from ._providers._base import Provider
from ._types import Validator
from .validators._spec import as_validator


class Rung(Settings):
    """One model of the ladder: who serves it, what it costs (USD per million tokens), how it is checked.

    ``validators`` is one validator, a list (all must pass) or None (use the cascade's default).
    ``reasks`` lets the rung retry itself with the failed verdicts fed back before escalating.
    ``breaker`` skips the rung for a cool-down after repeated failures (see ``cascade._breaker``).
    Without ``price_in``/``price_out`` the model's prices are looked up in the ``genai-prices`` package
    (``price_provider`` picks the vendor, e.g. ``"openai"``), and ``price_source`` says where from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    name: str = Field(min_length=1, max_length=200)
    provider: Provider
    model: str = Field(min_length=1)
    price_in: float = Field(default=None, ge=0)  # type: ignore[assignment]  # filled in by the lookup
    price_out: float = Field(default=None, ge=0)  # type: ignore[assignment]
    price_provider: str | None = None
    price_source: str | None = None
    params: RequestParams = Field(default_factory=RequestParams)
    validators: Any = None
    reasks: int = Field(default=0, ge=0, le=10)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: CircuitBreaker | None = None

    @model_validator(mode="before")
    @classmethod
    def _look_up_prices(cls, data: Any) -> Any:
        """No prices given: look the model up in genai-prices (explicit prices always win)."""
        if not isinstance(data, dict) or (data.get("price_in") is not None and data.get("price_out") is not None):
            return data
        if data.get("price_in") is not None or data.get("price_out") is not None:
            missing = "price_out" if data.get("price_in") is not None else "price_in"
            raise ValueError(f"Rung.{missing}: give both prices, or neither to look them up in genai-prices")
        from ._prices import lookup

        found = lookup(str(data.get("model", "")), data.get("price_provider"))
        return {**data, "price_in": found.price_in, "price_out": found.price_out, "price_source": found.source}

    @field_validator("price_in", "price_out")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"price must be a finite number of USD per million tokens, got {v!r}")
        return v

    @field_validator("provider", mode="before")
    @classmethod
    def _is_provider(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("a rung needs a provider (for example OpenAICompatible(base_url=...)), got None")
        if not callable(getattr(v, "complete", None)):
            raise ValueError(f"provider must have an async complete(request) method, got {type(v).__name__}")
        return v

    @field_validator("validators", mode="before")
    @classmethod
    def _validators(cls, v: Any) -> Validator | None:
        return as_validator(v)

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """What this rung charges for the given tokens."""
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1_000_000


class Ladder(Settings):
    """Rungs ordered cheapest first. ``Ladder([a, b, c])`` or ``Ladder(rungs=[...])``.

    The engine walks the rungs in the order given, so a rung dearer than the next one (in both its
    input and its output price) is refused with a ``ConfigError``: it would pay the expensive model
    first. ``order="as_given"`` says the order is deliberate (a faster model first, say)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    rungs: tuple[Rung, ...]
    order: Literal["cheapest_first", "as_given"] = "cheapest_first"

    def __init__(self, rungs: Sequence[Rung] | None = None, **data: Any) -> None:
        if rungs is not None:
            data["rungs"] = rungs
        super().__init__(**data)
        if self.order == "cheapest_first":
            for low, high in itertools.pairwise(self.rungs):
                if low.price_in > high.price_in and low.price_out > high.price_out:
                    raise ConfigError(
                        f"rungs: not cheapest first: {low.name!r} (${low.price_in}/${low.price_out} per 1M tokens) "
                        f"comes before the cheaper {high.name!r} (${high.price_in}/${high.price_out}); reorder "
                        "the rungs, or pass order='as_given' if the order is deliberate"
                    )

    @model_validator(mode="after")
    def _check(self) -> Ladder:
        if not self.rungs:
            raise ValueError("rungs: a ladder needs at least one rung, got []")
        seen: set[str] = set()
        for r in self.rungs:
            if r.name in seen:
                raise ValueError(f"rungs: duplicate rung name {r.name!r}; names identify rungs in the log")
            seen.add(r.name)
        return self

    def __len__(self) -> int:
        return len(self.rungs)

    def __getitem__(self, name: str) -> Rung:
        for r in self.rungs:
            if r.name == name:
                return r
        raise KeyError(f"no rung named {name!r}; rungs are {[r.name for r in self.rungs]}")

    @property
    def top(self) -> Rung:
        return self.rungs[-1]
