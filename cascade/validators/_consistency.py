"""Self-consistency: draw more answers from the same rung and accept when enough of them agree.

Agreement is a cheap, model-agnostic signal: a small model that is unsure answers differently at
temperature > 0. It costs ``samples - 1`` extra calls per checked answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .._errors import ConfigError
from ._base import BaseValidator, Candidate, Verdict
from ._jsontext import JsonNotFound, canonical, find_json

Key = Callable[[Any], Any] | str
Parse = Literal["auto", "json", "text"] | Callable[[str], Any]

_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Text answers compare case-insensitively with whitespace runs collapsed."""
    return _SPACES.sub(" ", text.strip()).lower()


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    value: Any  # the parsed value (JSON mode) or None
    label: str | None  # the normalised answer; None when it could not be read (its own answer)


@dataclass(frozen=True, slots=True)
class Agreement:
    """How k answers split: the majority answer, its count and share, and which answer carries it."""

    label: str | None
    count: int
    total: int
    index: int  # the first answer carrying the majority label (-1 when no answer could be read)

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0


def majority(labels: Sequence[str | None], total: int | None = None) -> Agreement:
    """The most frequent non-None label. Ties go to the label seen first (the candidate's own answer is
    first, so a tie keeps it). ``None`` labels (unreadable answers) never win; ``total`` defaults to
    ``len(labels)`` and may be larger when fewer answers came back than were asked for."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label is None:
            continue
        counts[label] = counts.get(label, 0) + 1
        first.setdefault(label, i)
    n = len(labels) if total is None else total
    if not counts:
        return Agreement(None, 0, n, -1)
    best = min(counts, key=lambda lab: (-counts[lab], first[lab]))
    return Agreement(best, counts[best], n, first[best])


class SelfConsistency(BaseValidator):
    """Accept when at least ``threshold`` of ``samples`` answers (the candidate plus ``samples - 1``
    drawn with ``candidate.sample``) agree. Reason ``low_agreement``; score = the majority's share.

    Answers are compared by their normal form:

    * ``parse="auto"`` (default): JSON when the candidate's own answer is JSON (an earlier check parsed
      it, or it holds a JSON object/array), else text. ``parse="json"`` or ``"text"`` forces one.
      A callable ``parse(text) -> value`` (for example ``JsonSchema(...).parse``) reads each answer and
      raises on a bad one.
    * JSON answers compare as canonical JSON (sorted keys, no whitespace); when the candidate was parsed
      into a pydantic model, samples are validated into the same model. Text answers compare stripped,
      lowercased, with whitespace runs collapsed.
    * ``key``: compare only part of the answer: a field name (``key="label"``) or a function of the
      parsed value (of the stripped text in text mode), e.g. ``key=lambda parsed: parsed["label"]``.
    * ``temperature``: the samples' temperature; by default the request's own when above 0, else 0.7.

    An answer that cannot be read (not JSON in JSON mode, a failing ``parse`` or ``key``) is its own
    answer and never the majority. Samples the engine did not return count as disagreeing: the share is
    always out of ``samples``. Ties go to the answer seen first, so a tie keeps the candidate's answer.
    On a pass, the verdict's ``text`` is the first answer carrying the majority (the candidate's own
    when it is in the majority) and ``value`` its parsed value, so the result outputs the majority.
    """

    cost = 10
    soft = True  # disagreement means a stronger model may do better

    def __init__(
        self,
        samples: int = 5,
        threshold: float = 0.6,
        key: Key | None = None,
        *,
        parse: Parse = "auto",
        temperature: float | None = None,
        name: str = "self_consistency",
    ) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise ConfigError(
                f"SelfConsistency: samples must be an int >= 2 (the candidate counts as one), got {samples!r}"
            )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ConfigError(f"SelfConsistency: threshold must be a share in (0, 1], got {threshold!r}")
        if key is not None and not (isinstance(key, str) or callable(key)):
            raise ConfigError(f"SelfConsistency: key must be a field name or a function, got {key!r}")
        if not (callable(parse) or parse in ("auto", "json", "text")):
            raise ConfigError(f"SelfConsistency: parse must be 'auto', 'json', 'text' or a function, got {parse!r}")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature <= 2
        ):
            raise ConfigError(f"SelfConsistency: temperature must be in (0, 2], got {temperature!r}")
        self.samples = samples
        self.temperature = temperature
        self.threshold = float(threshold)
        self.key = key
        self.parse = parse
        self.name = name

    async def validate(self, candidate: Candidate) -> Verdict:
        reader = self._reader(candidate)
        known = (
            candidate.parsed
            if reader is not None and not callable(self.parse) and _structured(candidate.parsed)
            else None
        )
        first = self._read(candidate.text, reader, known)
        extra = await candidate.sample(self.samples - 1, temperature=self.temperature)
        answers = [first, *(self._read(c.text, reader, None) for c in extra[: self.samples - 1])]
        agreement = majority([a.label for a in answers], total=self.samples)
        share = agreement.share
        detail = self._describe(answers, agreement)
        if agreement.label is None or share < self.threshold:
            return Verdict(False, "low_agreement", share, detail, self.name)
        winner = answers[agreement.index]
        return Verdict(True, "ok", share, detail, self.name, winner.value, winner.text)

    def _reader(self, candidate: Candidate) -> Callable[[str], Any] | None:
        """How to read each answer: a function (JSON modes) or None (text mode)."""
        if callable(self.parse):
            return self.parse
        model = type(candidate.parsed) if isinstance(candidate.parsed, BaseModel) else None
        if self.parse == "text" or (self.parse == "auto" and self.key is None and not _is_json(candidate)):
            return None

        def read(text: str) -> Any:
            value = find_json(text).value
            return model.model_validate(value) if model is not None else value

        return read

    def _read(self, text: str, reader: Callable[[str], Any] | None, known: Any) -> _Answer:
        try:
            if reader is None:
                value = None
                basis: Any = text.strip()
            else:
                value = known if known is not None else reader(text)
                basis = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            if self.key is not None:
                basis = self.key(basis) if callable(self.key) else _field(basis, self.key)
        except Exception:  # an unreadable answer (bad JSON, failing parse or key) is its own answer
            return _Answer(text, None, None)
        if reader is None and self.key is None:
            return _Answer(text, None, normalise_text(basis))
        if isinstance(basis, str) and reader is None:
            return _Answer(text, value, normalise_text(basis))
        return _Answer(text, value, canonical(basis))

    def _describe(self, answers: list[_Answer], agreement: Agreement) -> str:
        got = len(answers)
        missing = f"; {self.samples - got} sample(s) missing" if got < self.samples else ""
        unread = sum(a.label is None for a in answers)
        unread_s = f"; {unread} answer(s) could not be read" if unread else ""
        if agreement.label is None:
            return f"none of {self.samples} answers could be compared{missing}{unread_s}"
        distinct = len({a.label for a in answers if a.label is not None})
        return _clip(
            f"{agreement.count} of {self.samples} answers agree on {_clip(agreement.label, 120)} "
            f"(share {agreement.share:.2f}, threshold {self.threshold:.2f}); {distinct} distinct answer(s)"
            f"{missing}{unread_s}",
            400,
        )


def _structured(value: Any) -> bool:
    return isinstance(value, (dict, list, BaseModel))


def _is_json(candidate: Candidate) -> bool:
    if _structured(candidate.parsed):
        return True
    try:
        found = find_json(candidate.text)
    except JsonNotFound:
        return False
    return isinstance(found.value, (dict, list))


def _field(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value[key]
    raise TypeError(f"cannot take field {key!r} of {type(value).__name__}")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
