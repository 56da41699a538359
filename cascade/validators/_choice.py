"""Choice check: a classification answer must be one of a closed set of labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from .._errors import ConfigError
from ._base import BaseValidator, Candidate, Verdict
from ._jsontext import JsonNotFound, find_json


class Choice(BaseValidator):
    """The label must be one of ``labels``. Reason ``label_not_allowed`` (``json_unparseable`` when
    ``field`` is set and the answer holds no JSON).

    Without ``field`` the whole answer (stripped; surrounding quotes and a final period dropped) is the
    label; with ``field="label"`` it is that field of the JSON answer (or of the model an earlier
    JsonSchema check parsed). ``case_sensitive=False`` compares case-insensitively. Cost 0.
    """

    cost = 0

    def __init__(
        self,
        labels: Sequence[str],
        field: str | None = None,
        *,
        case_sensitive: bool = True,
        name: str = "choice",
    ) -> None:
        if isinstance(labels, str) or not labels or not all(isinstance(x, str) for x in labels):
            raise ConfigError(f"Choice: labels must be a non-empty list of strings, got {labels!r}")
        if field is not None and (not isinstance(field, str) or not field):
            raise ConfigError(f"Choice: field must be a non-empty field name or None, got {field!r}")
        self.labels = tuple(labels)
        self.field = field
        self.case_sensitive = case_sensitive
        self.name = name
        self._allowed = {self._norm(x) for x in self.labels}

    def _norm(self, s: str) -> str:
        return s if self.case_sensitive else s.casefold()

    def validate(self, candidate: Candidate) -> Verdict:
        if self.field is None:
            label: Any = _bare(candidate.text)
        else:
            source: Any = candidate.parsed
            if source is None:
                try:
                    source = find_json(candidate.text).value
                except JsonNotFound as exc:
                    return Verdict(False, "json_unparseable", None, f"the answer is not JSON: {exc}", self.name)
            if isinstance(source, BaseModel):
                source = source.model_dump()
            if not isinstance(source, dict) or self.field not in source:
                return Verdict(False, "label_not_allowed", None, f"the answer has no field {self.field!r}", self.name)
            label = source[self.field]
        if isinstance(label, str) and self._norm(label) in self._allowed:
            return Verdict(True, "ok", None, "", self.name)
        where = f"field {self.field!r}" if self.field else "the answer"
        shown = repr(label)[:80]
        return Verdict(
            False,
            "label_not_allowed",
            None,
            f"{where} must be one of {', '.join(repr(x) for x in self.labels)[:300]}; got {shown}",
            self.name,
        )


def _bare(text: str) -> str:
    """``' "billing".'`` and ``'"billing."'`` as ``billing``."""
    return text.strip().rstrip(".").strip().strip("\"'`").rstrip(".").strip()
