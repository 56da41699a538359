"""What ``validators=`` accepts, normalised into one check: a check, a list of them (all must pass), or a
pydantic model class / JSON-schema dict standing for ``JsonSchema(it)``; anything else is refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._errors import ConfigError
from .._types import Validator
from ._base import AllOf
from ._schema import JsonSchema

if TYPE_CHECKING:
    from typing import TypeAlias

CheckSpec: TypeAlias = Validator | type[BaseModel] | Mapping[str, Any]
"""What ``validators=`` takes: a check, or a pydantic model / JSON-schema dict meaning ``JsonSchema(it)``."""


def _one(item: object, where: str) -> Validator:
    """A validator, or a pydantic model class / JSON-schema dict taken as ``JsonSchema(item)``."""
    if isinstance(item, type) and issubclass(item, BaseModel):
        return JsonSchema(item)
    if isinstance(item, Mapping):
        return JsonSchema(dict(item))
    if isinstance(item, type) or not callable(getattr(item, "validate", None)):
        raise ConfigError(f"{where}: expected a check (an object with validate(candidate)), got {item!r:.100}")
    return item  # type: ignore[return-value]  # it has validate(): the protocol's one method


def as_validator(validators: object, where: str = "validators") -> Validator | None:
    """Normalise ``validators=`` (one check, a list meaning all-of, or None). A pydantic model class or a
    JSON-schema dict stands for ``JsonSchema(it)``; anything else that is not a check is refused here,
    before a call is paid for, with a ``ConfigError`` naming it."""
    if validators is None:
        return None
    if isinstance(validators, Sequence) and not isinstance(validators, str):
        items = [_one(v, f"{where}[{i}]") for i, v in enumerate(validators)]
        if not items:
            return AllOf()
        return items[0] if len(items) == 1 else AllOf(*items)
    return _one(validators, where)
