"""cascade-router: send each request to the cheapest model first, escalate when its answer fails checks,
and account for every call."""

from ._config import CircuitBreaker, RequestParams, RetryPolicy, SkipIdle
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
from ._events import SCHEMA_VERSION, event_json_schema
from ._gates import BaseGate, GateContext, Gates, RungGate, Skip
from ._ladder import Ladder, Rung
from ._progress import BatchProgress
from ._providers import Anthropic, FunctionProvider, OpenAICompatible, Provider
from ._result import Attempt, CascadeResult
from ._sinks import EventSink, JsonlSink, MemorySink, MultiSink, StructlogSink, add_timestamp, event_level
from ._types import Candidate, Completion, CompletionRequest, Step, TokenLogprob, ToolCall, Validator, Verdict

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Anthropic",
    "Attempt",
    "BaseGate",
    "BatchProgress",
    "BudgetExhausted",
    "CallerError",
    "Candidate",
    "Cascade",
    "CascadeError",
    "CascadeExhausted",
    "CascadeResult",
    "CircuitBreaker",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "EventSink",
    "FunctionProvider",
    "GateContext",
    "Gates",
    "JsonlSink",
    "Ladder",
    "MemorySink",
    "MultiSink",
    "OpenAICompatible",
    "Provider",
    "ProviderError",
    "RequestError",
    "RequestParams",
    "RetryPolicy",
    "Rung",
    "RungGate",
    "Skip",
    "SkipIdle",
    "Step",
    "StructlogSink",
    "TokenLogprob",
    "ToolCall",
    "Validator",
    "Verdict",
    "add_timestamp",
    "event_json_schema",
    "event_level",
]
