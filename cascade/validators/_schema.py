"""JSON schema check: the answer must contain JSON that fits a Draft 2020-12 schema or a pydantic model."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .._errors import ConfigError
from ._base import AllOf, BaseValidator, Candidate, Verdict
from ._jsontext import MAX_SCAN, JsonNotFound, find_json
from ._patterns import bounded_validator, check_patterns

if TYPE_CHECKING:  # jsonschema is imported when a JsonSchema is made, not with cascade (import time)
    from jsonschema.exceptions import ValidationError as SchemaValidationError

MAX_ERRORS = 3
"""Schema errors quoted in a verdict's detail (the first ones, ordered by JSON path)."""
MAX_DETAIL = 600
"""Characters of detail kept, so a verdict stays small in the log and in a re-ask prompt."""

ResponseFormatStyle = Literal["openai", "llama_cpp", "json_object"]


class AnswerInvalid(ValueError):
    """Raised by :meth:`JsonSchema.parse`; ``reason`` is ``json_unparseable`` or ``schema_invalid``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def json_path(path: Iterable[Any]) -> str:
    """``("items", 0, "name")`` as ``$.items[0].name``."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


class JsonSchema(BaseValidator):
    """The answer must hold JSON valid against ``schema`` (a Draft 2020-12 dict or a pydantic model class).

    The verdict's ``value`` is the parsed JSON, or the model instance for a pydantic model (the engine
    exposes it as ``result.parsed``). Code fences and surrounding prose are tolerated as described in
    :mod:`cascade.validators._jsontext`. Reasons: ``json_unparseable``, ``schema_invalid``.
    """

    cost = 0

    def __init__(
        self,
        schema: Mapping[str, Any] | type[BaseModel],
        *,
        name: str = "json_schema",
        max_scan: int = MAX_SCAN,
    ) -> None:
        self.name = name
        self.max_scan = max_scan
        self.model: type[BaseModel] | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.model = schema
            schema_dict: dict[str, Any] = schema.model_json_schema()
        elif isinstance(schema, Mapping):
            schema_dict = dict(schema)
        else:
            raise ConfigError(
                f"JsonSchema: schema must be a JSON-schema dict or a pydantic model class, got {schema!r}"
            )
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema_dict)
        except SchemaError as exc:
            raise ConfigError(
                f"JsonSchema: schema is not a valid Draft 2020-12 schema: {exc.message} "
                f"(at {json_path(exc.path)} of the schema)"
            ) from None
        check_patterns(schema_dict, "JsonSchema")
        self.schema = schema_dict
        self._validator = bounded_validator(Draft202012Validator)(schema_dict)

    def parse(self, text: str) -> Any:
        """The validated value of ``text`` (a model instance for a pydantic model); raise AnswerInvalid.

        Usable on its own, for example ``SelfConsistency(parse=schema.parse)`` checks every sample too.
        """
        try:
            data = find_json(text, max_scan=self.max_scan).value
        except JsonNotFound as exc:
            raise AnswerInvalid("json_unparseable", _clip(f"the answer is not JSON: {exc}", MAX_DETAIL)) from None
        if self.model is not None:
            try:
                return self.model.model_validate(data)
            except PydanticValidationError as exc:
                errors = [f"{json_path(e['loc'])}: {_clip(e['msg'], 160)}" for e in exc.errors()[:MAX_ERRORS]]
                raise AnswerInvalid("schema_invalid", self._describe(errors, exc.error_count())) from None
        found = sorted(self._validator.iter_errors(data), key=_error_order)
        if found:
            errors = [f"{json_path(e.absolute_path)}: {_clip(e.message, 160)}" for e in found[:MAX_ERRORS]]
            raise AnswerInvalid("schema_invalid", self._describe(errors, len(found)))
        return data

    def _describe(self, errors: list[str], total: int) -> str:
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        return _clip("the JSON does not match the schema: " + "; ".join(errors) + more, MAX_DETAIL)

    def validate(self, candidate: Candidate) -> Verdict:
        try:
            value = self.parse(candidate.text)
        except AnswerInvalid as exc:
            return Verdict(False, exc.reason, None, exc.detail, self.name)
        return Verdict(True, "ok", None, "", self.name, value)

    def response_format(self, style: ResponseFormatStyle = "openai", *, strict: bool = True) -> dict[str, Any]:
        """What a rung should send as ``response_format`` so the provider constrains output to JSON.

        * ``"openai"``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (OpenAI
          structured outputs; strict mode needs every property required and
          ``additionalProperties: false``).
        * ``"llama_cpp"``: ``{"type": "json_object", "schema": {...}}`` (llama.cpp's server; it answers
          the OpenAI form with HTTP 500).
        * ``"json_object"``: ``{"type": "json_object"}``: any JSON, for providers without schemas.
        """
        if style == "openai":
            title = self.model.__name__ if self.model is not None else str(self.schema.get("title") or self.name)
            name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "response"
            return {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": self.schema, "strict": strict},
            }
        if style == "llama_cpp":
            return {"type": "json_object", "schema": self.schema}
        if style == "json_object":
            return {"type": "json_object"}
        raise ConfigError(
            f"JsonSchema.response_format: style must be 'openai', 'llama_cpp' or 'json_object', got {style!r}"
        )


def _error_order(err: SchemaValidationError) -> tuple[str, ...]:
    return tuple(str(p) for p in err.absolute_path)


def schema_of(validator: object) -> JsonSchema | None:
    """The JsonSchema a rung's check requires: the validator itself or a part of an all-of (``&``, a
    list). None when there is none, or when it is only an alternative inside ``|`` (not required).

    Lets an engine or a user derive the rung's ``response_format`` from its checks."""
    if isinstance(validator, JsonSchema):
        return validator
    if isinstance(validator, AllOf):
        for part in validator.validators:
            found = schema_of(part)
            if found is not None:
                return found
    return None
