"""Tool-call check: the calls an answer makes must name tools the request declared, with arguments that
fit each tool's ``parameters`` schema. A model that invents a tool or malformed arguments escalates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._base import BaseValidator, Candidate, Verdict
from ._schema import MAX_DETAIL, _clip, json_path


class ToolCalls(BaseValidator):
    """Every tool call of the answer names a tool of the request's ``tools`` and its arguments are JSON
    that fits that tool's ``parameters``. ``required=True`` also fails an answer that calls no tool (as
    ``tool_choice="required"`` asks). Reasons: ``tool_call_missing``, ``tool_unknown``,
    ``tool_arguments_unparseable``, ``tool_arguments_invalid``."""

    cost = 0

    def __init__(self, *, required: bool = False, name: str = "tool_calls") -> None:
        self.required = required
        self.name = name
        self._validators: dict[str, Any] = {}

    def validate(self, candidate: Candidate) -> Verdict:
        calls = candidate.completion.tool_calls
        if not calls:
            if self.required:
                return Verdict(False, "tool_call_missing", None, "the answer calls no tool", self.name)
            return Verdict(True, "ok", None, "", self.name)
        declared = declared_tools(candidate.params.get("tools"))
        for call in calls:
            if call.name not in declared:
                detail = f"call {call.id} names tool {call.name!r}; the request declares {sorted(declared)}"
                return Verdict(False, "tool_unknown", None, _clip(detail, MAX_DETAIL), self.name)
            try:
                arguments = json.loads(call.arguments)
            except ValueError as exc:
                detail = f"call {call.id} ({call.name}): arguments are not JSON: {exc}"
                return Verdict(False, "tool_arguments_unparseable", None, _clip(detail, MAX_DETAIL), self.name)
            errors = self._errors(declared[call.name], arguments)
            if errors:
                detail = f"call {call.id} ({call.name}): arguments do not match the tool's parameters: {errors}"
                return Verdict(False, "tool_arguments_invalid", None, _clip(detail, MAX_DETAIL), self.name)
        return Verdict(True, "ok", None, "", self.name)

    def _errors(self, schema: Mapping[str, Any] | None, arguments: Any) -> str:
        if not schema:
            return ""
        from jsonschema import Draft202012Validator

        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = Draft202012Validator(schema)
        found = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
        return "; ".join(f"{json_path(e.absolute_path)}: {_clip(e.message, 160)}" for e in found[:3])


def declared_tools(tools: Any) -> dict[str, Mapping[str, Any] | None]:
    """Tool name -> its ``parameters`` schema, from an OpenAI ``tools`` list (entries without a name are
    ignored: the provider refuses them before any answer exists)."""
    out: dict[str, Mapping[str, Any] | None] = {}
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            out[function["name"]] = parameters if isinstance(parameters, Mapping) else None
    return out
