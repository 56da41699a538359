"""Rows in, rows out: how a table row becomes a request, and a result becomes output columns.

Shared by every engine (Ray Data, Dask, Spark): each gives the core a pandas DataFrame. The request id
of a row is stable across runs and machines (its ``id_column``, else a hash of its messages), so a
restart can tell which rows are already answered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError, RequestError
from .._result import CascadeResult
from .._types import Message

OUTPUT_COLUMNS: tuple[str, ...] = (
    "request_id",
    "answer",
    "answered_by",
    "accepted",
    "outcome",
    "cost_usd",
    "reasons",
    "error",
    "resumed",
)
"""The columns added to every row (plus one per name in ``fields``)."""


@dataclass(frozen=True)
class RowSpec:
    """Which columns make a request and which parsed fields come back as columns.

    ``messages``: a column holding a message list (or a plain string, sent as one user message).
    ``prompt``: a template over the row's columns (``"Classify: {title}"``), sent as one user message,
    after ``system`` when given. Exactly one of the two. ``id_column``: the row's stable id (else a hash
    of its messages: identical rows then share one id). ``fields``: keys of the accepted answer's parsed
    value (a dict or a pydantic model) to copy into columns of the same name.
    """

    messages: str | None = None
    prompt: str | None = None
    system: str | None = None
    id_column: str | None = None
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ConfigError(
                f"messages/prompt: give exactly one (a column of messages, or a prompt template), "
                f"got messages={self.messages!r}, prompt={self.prompt!r}"
            )
        for name in ("messages", "prompt", "system", "id_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
        if isinstance(self.fields, str) or not all(isinstance(f, str) and f for f in self.fields):
            raise ConfigError(f"fields: expected a list of column names, got {self.fields!r}")
        clash = sorted(set(self.fields) & set(OUTPUT_COLUMNS))
        if clash:
            raise ConfigError(f"fields: {clash} would overwrite the output columns {list(OUTPUT_COLUMNS)}")

    @property
    def output_columns(self) -> tuple[str, ...]:
        return OUTPUT_COLUMNS + tuple(self.fields)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Refuse a table whose columns the spec needs are missing, or that already has an output column."""
        have = set(columns)
        needed = [c for c in (self.messages, self.id_column) if c is not None]
        missing = [c for c in needed if c not in have]
        if missing:
            raise ConfigError(f"columns: {missing} not in the rows' columns {sorted(have)}")
        taken = sorted(have & set(self.output_columns))
        if taken:
            raise ConfigError(f"columns: the rows already have {taken}, which the cascade writes; rename them")

    def messages_of(self, row: Mapping[str, Any]) -> list[Message]:
        """The request's messages; RequestError (naming the column) when the row cannot make one."""
        if self.prompt is not None:
            try:
                text = self.prompt.format_map(row)
            except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                raise RequestError(f"prompt: cannot fill {self.prompt!r:.80} from the row: {exc!r}") from None
            out: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
            return [*out, {"role": "user", "content": text}]
        value = row[self.messages or ""]
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if isinstance(value, Mapping) or not hasattr(value, "__iter__"):
            raise RequestError(f"{self.messages}: expected a list of messages or a string, got {value!r:.80}")
        # Arrow hands back lists as numpy arrays of dicts: plain lists and dicts for the engine
        return [dict(m) if isinstance(m, Mapping) else m for m in value]

    def request_id(self, row: Mapping[str, Any], messages: Sequence[Message]) -> str:
        """The same id for the same row in any process, run or machine."""
        if self.id_column is not None:
            value = row[self.id_column]
            if value is None or (isinstance(value, float) and value != value):
                raise RequestError(f"{self.id_column}: the row's id is missing ({value!r})")
            return f"row-{value}"
        canon = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return "row-" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:32]

    def output_of(self, result: CascadeResult, *, reasons: Sequence[str] | None = None) -> dict[str, Any]:
        """The output columns of one row."""
        out: dict[str, Any] = {
            "request_id": result.request_id,
            "answer": result.output,
            "answered_by": result.answered_by,
            "accepted": result.accepted,
            "outcome": result.outcome,
            "cost_usd": result.cost_usd,
            "reasons": list(reasons) if reasons is not None else reasons_of(result),
            "error": result.error,
            "resumed": result.resumed,
        }
        parsed = _parsed(result)
        for name in self.fields:
            out[name] = _field(parsed, name)
        return out


def reasons_of(result: CascadeResult) -> list[str]:
    """Why the request escalated (or ended), each reason once, in the order the attempts gave them."""
    return list(dict.fromkeys(r for a in result.attempts for r in a.reasons))


def _parsed(result: CascadeResult) -> Any:
    """The parsed answer as plain JSON values (a pydantic model dumped); for a row resumed from a log,
    the logged answer read as JSON."""
    if result.parsed is not None:
        dump = getattr(result.parsed, "model_dump", None)
        return dump(mode="json") if callable(dump) else result.parsed
    if not result.resumed or result.output is None:
        return None
    try:
        return json.loads(result.output)
    except ValueError:
        return None


def _field(parsed: Any, name: str) -> Any:
    return parsed.get(name) if isinstance(parsed, Mapping) else None
