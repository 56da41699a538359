"""Quality checks that decide every escalation: schema, self-consistency, confidence, custom."""

from ._base import (
    AllOf,
    AnyOf,
    BaseValidator,
    Candidate,
    Check,
    CheckFn,
    Validator,
    Verdict,
    check,
    run_validator,
)
from ._choice import Choice
from ._confidence import Confidence
from ._consistency import SelfConsistency
from ._feedback import feedback_message, reask_messages
from ._jsontext import find_json
from ._regex import Regex
from ._schema import AnswerInvalid, JsonSchema, schema_of
from ._spec import CheckSpec, as_validator

__all__ = [
    "AllOf",
    "AnswerInvalid",
    "AnyOf",
    "BaseValidator",
    "Candidate",
    "Check",
    "CheckFn",
    "CheckSpec",
    "Choice",
    "Confidence",
    "JsonSchema",
    "Regex",
    "SelfConsistency",
    "Validator",
    "Verdict",
    "as_validator",
    "check",
    "feedback_message",
    "find_json",
    "reask_messages",
    "run_validator",
    "schema_of",
]
