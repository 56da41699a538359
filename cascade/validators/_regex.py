"""Regex check: the answer must match a pattern (a format, an ID, a single word)."""

from __future__ import annotations

import re
from typing import Any, Literal

from .._errors import ConfigError
from ._base import BaseValidator, Candidate, Verdict
from ._patterns import check_pattern, compile_bounded

Mode = Literal["search", "fullmatch"]


class Regex(BaseValidator):
    """The answer (stripped) must match ``pattern``: anywhere (``mode="search"``) or as a whole
    (``mode="fullmatch"``). Reason ``regex_mismatch``. Local and free (cost 0). A pattern given as a
    string without flags runs on RE2 when the ``re2`` extra is installed (linear time); one that can
    backtrack exponentially on ``re`` is refused (see ``cascade.validators._patterns``)."""

    cost = 0

    def __init__(
        self, pattern: str | re.Pattern[str], *, name: str = "regex", mode: Mode = "search", flags: int = 0
    ) -> None:
        if mode not in ("search", "fullmatch"):
            raise ConfigError(f"Regex: mode must be 'search' or 'fullmatch', got {mode!r}")
        try:
            compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"Regex: pattern {pattern!r} does not compile: {exc}") from None
        self.pattern: Any = compiled
        if isinstance(pattern, str) and not flags:
            check_pattern(pattern, "Regex")
            self.pattern = compile_bounded(pattern)
        elif isinstance(pattern, str):  # flags: Python's re runs it, so it must not backtrack exponentially
            check_pattern(pattern, "Regex", on_re=True)
        self.mode: Mode = mode
        self.name = name

    def validate(self, candidate: Candidate) -> Verdict:
        text = candidate.text.strip()
        match = self.pattern.fullmatch(text) if self.mode == "fullmatch" else self.pattern.search(text)
        if match is None:
            how = "match the whole of" if self.mode == "fullmatch" else "contain a match of"
            shown = text if len(text) <= 80 else text[:77] + "..."
            return Verdict(
                False,
                "regex_mismatch",
                None,
                f"the answer must {how} /{self.pattern.pattern}/; got {shown!r}",
                self.name,
            )
        return Verdict(True, "ok", None, "", self.name)
