"""cascade-router: send each request to the cheapest model first, escalate when its answer fails checks,
and account for every call."""

from ._anthropic import Anthropic
from ._breaker import CircuitBreaker
from ._engine import Cascade
from ._errors import (
    BudgetExhausted,
    CallerError,
    CascadeError,
    CascadeExhausted,
    ConfigError,
    ProviderError,
    RequestError,
)
from ._events import EventSink, JsonlSink, MemorySink, StructlogSink, add_timestamp
from ._idle import SkipIdle
from ._ladder import Ladder, RequestParams, RetryPolicy, Rung
from ._openai import OpenAICompatible
from ._provider import Provider
from ._result import Attempt, CascadeResult
from ._types import Completion, CompletionRequest, TokenLogprob, ToolCall

__version__ = "0.1.0"

__all__ = [
    "Anthropic",
    "Attempt",
    "BudgetExhausted",
    "CallerError",
    "Cascade",
    "CascadeError",
    "CascadeExhausted",
    "CascadeResult",
    "CircuitBreaker",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "EventSink",
    "JsonlSink",
    "Ladder",
    "MemorySink",
    "OpenAICompatible",
    "Provider",
    "ProviderError",
    "RequestError",
    "RequestParams",
    "RetryPolicy",
    "Rung",
    "SkipIdle",
    "StructlogSink",
    "TokenLogprob",
    "ToolCall",
    "add_timestamp",
]
