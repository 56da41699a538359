"""Agreement check: accept a rung's answer when earlier rungs of the same request gave the same one.

Two cheap models that agree are right far more often than either alone (on the recorded RouterBench
ARC answers agreement is the only signal, and the strongest); the check reads the earlier rungs'
answers from ``Candidate.history`` so it runs live, not only in replays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._errors import ConfigError
from .._types import Candidate, Step, Verdict
from ._base import BaseValidator
from ._choice import _bare

AnswerOf = Callable[[str], Any]


def _default_answer(text: str) -> Any:
    return _bare(text).casefold() or None


class Agreement(BaseValidator):
    """Pass when at least ``min_votes`` of the earlier rungs (all, or those named in ``rungs``, by name
    or index) answered the same, and at least ``min_share`` of those that answered did. Reason
    ``rungs_disagree``; ``no_earlier_answer`` on a rung with no earlier answer to compare (the
    cheapest rung: put Agreement on the rungs after it). Score: the share of agreeing rungs.

    ``answer`` reads the answer from a text: a function, or a policy answer rule (``{"kind":
    "choice", "labels": [...]}``, ``regex``, ``json``, ``text``); default: the bare text, case-folded.
    ``min_confidence``: an earlier rung's vote counts only if its recorded confidence
    (``Step.confidence``, e.g. its ``Confidence`` check's score) is at least this. Cost 0.
    """

    cost = 0

    def __init__(
        self,
        rungs: Sequence[str | int] | None = None,
        *,
        min_votes: int = 1,
        min_share: float = 0.0,
        min_confidence: float | None = None,
        answer: AnswerOf | Mapping[str, Any] | None = None,
        name: str = "agreement",
    ) -> None:
        if isinstance(min_votes, bool) or not isinstance(min_votes, int) or min_votes < 1:
            raise ConfigError(f"Agreement: min_votes must be an integer >= 1, got {min_votes!r}")
        if isinstance(min_share, bool) or not isinstance(min_share, (int, float)) or not 0 <= min_share <= 1:
            raise ConfigError(f"Agreement: min_share must be in [0, 1], got {min_share!r}")
        if min_confidence is not None and (
            isinstance(min_confidence, bool)
            or not isinstance(min_confidence, (int, float))
            or not 0 <= min_confidence <= 1
        ):
            raise ConfigError(f"Agreement: min_confidence must be in [0, 1] or None, got {min_confidence!r}")
        if rungs is not None and (isinstance(rungs, str) or not rungs):
            raise ConfigError(f"Agreement: rungs must be a non-empty list of rung names or indexes, got {rungs!r}")
        self.rungs = tuple(rungs) if rungs is not None else None
        self.min_votes, self.min_share, self.min_confidence = min_votes, float(min_share), min_confidence
        self.name = name
        if answer is None:
            self._answer: AnswerOf = _default_answer
        elif isinstance(answer, Mapping):
            from ._policy import check_answer_rule, extract

            rule = check_answer_rule(answer)
            self._answer = lambda text: extract(rule, text)
        elif callable(answer):
            self._answer = answer
        else:
            raise ConfigError(f"Agreement: answer must be a function of the text or an answer rule, got {answer!r}")

    def _voters(self, history: Sequence[Step]) -> list[Step]:
        steps = [s for s in history if s.text is not None]
        if self.rungs is None:
            return steps
        return [s for s in steps if s.rung in self.rungs or s.rung_index in self.rungs]

    def validate(self, candidate: Candidate) -> Verdict:
        voters = self._voters(candidate.history)
        if not voters:
            return Verdict(
                False, "no_earlier_answer", None, "no earlier rung answered: nothing to agree with", self.name
            )
        mine = self._answer(candidate.text)
        agree = [s for s in voters if mine is not None and self._answer(s.text or "") == mine]
        if self.min_confidence is not None:
            agree = [s for s in agree if s.confidence is not None and s.confidence >= self.min_confidence]
        share = len(agree) / len(voters)
        detail = f"{len(agree)} of {len(voters)} earlier rung(s) agree ({', '.join(s.rung for s in agree) or 'none'})"
        if len(agree) >= self.min_votes and share >= self.min_share:
            return Verdict(True, "ok", share, detail, self.name)
        return Verdict(False, "rungs_disagree", share, detail, self.name)
