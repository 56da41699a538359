"""Quality checks that decide every escalation: schema, self-consistency, confidence, custom."""

from ._base import AllOf, AnyOf, BaseValidator, Candidate, Check, Validator, Verdict, as_validator, check, run_validator

__all__ = [
    "AllOf",
    "AnyOf",
    "BaseValidator",
    "Candidate",
    "Check",
    "Validator",
    "Verdict",
    "as_validator",
    "check",
    "run_validator",
]
