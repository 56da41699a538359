"""How a live check of a fitted policy reads what the recorded data holds: the answer rule that
reproduces the recorded answers from the recorded texts (``cascade.validators._policy.extract``),
and the confidence reading the recorded confidences were measured with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..validators._confidence import Confidence
from ..validators._policy import extract
from ._data import Dataset
from ._policy import DEFAULT_CONFIDENCE, answer_key, check_confidence_reading

LEADING_LETTER = r"^\s*\(?([A-Z])\b"
MAX_LABELS = 40


def candidate_rules(dataset: Dataset, models: Sequence[str]) -> list[dict[str, Any]]:
    answers = [r.responses[m].samples[0].answer for r in dataset.records for m in models]
    labels = {a for a in answers if isinstance(a, str)}
    rules: list[dict[str, Any]] = []
    if labels and all(a is None or isinstance(a, str) for a in answers) and len(labels) <= MAX_LABELS:
        rules.append({"kind": "choice", "labels": sorted(labels)})
    rules += [{"kind": "regex", "pattern": LEADING_LETTER}, {"kind": "json"}, {"kind": "text"}]
    return rules


def match_rate(dataset: Dataset, models: Sequence[str], rule: dict[str, Any]) -> float:
    """Share of the models' primary samples whose text gives the recorded answer under ``rule``."""
    pairs = [(s.text, s.answer) for r in dataset.records for m in models for s in r.responses[m].samples[:1]]
    same = sum(1 for text, answer in pairs if answer_key(extract(rule, text)) == answer_key(answer))
    return same / len(pairs) if pairs else 0.0


def infer_answer_rule(dataset: Dataset, models: Sequence[str]) -> tuple[dict[str, Any], float]:
    """The candidate rule (labels, a leading option letter, JSON, the text) that reproduces most
    recorded answers, and that share (1.0: a live check reads exactly what was recorded)."""
    scored = [(match_rate(dataset, models, rule), -i, rule) for i, rule in enumerate(candidate_rules(dataset, models))]
    rate, _, rule = max(scored, key=lambda t: (t[0], t[1]))
    return rule, rate


def confidence_reading(dataset: Dataset) -> dict[str, Any]:
    """The catalog entry's ``"confidence_reading"``: the :class:`~cascade.validators.Confidence`
    options the recorded confidences were measured with (e.g. ``{"label_field": "label", "labels":
    [...]}``), checked; without one, the mean over the tokens (the catalog's ``confidence`` is prose)."""
    where = f"catalog {dataset.name}.confidence_reading"
    reading = check_confidence_reading(dataset.catalog.get("confidence_reading", DEFAULT_CONFIDENCE), where)
    Confidence(0.0, **reading)  # a bad value fails here, naming it, not at the first live request
    return dict(reading)
