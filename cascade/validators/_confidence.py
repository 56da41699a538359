"""Confidence check: accept an answer when the model was sure of it, read from its token logprobs.

Token logprobs are free (ask the rung for ``logprobs=True, top_logprobs=10``) and, on small models,
separate right from wrong answers better than nothing. Where a provider gives none, a recorded
confidence (``Completion.confidence``) is used, else the ``on_unavailable`` policy decides.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .._errors import ConfigError
from .._types import TokenLogprob
from ._base import BaseValidator, Candidate, Verdict
from ._jsontext import JsonNotFound, find_json, value_spans

Aggregate = Literal["min", "mean", "quantile"]
OnUnavailable = Literal["escalate", "pass", "verbalize"]

VERBALIZE_PROMPT = (
    "How confident are you that your answer above is correct? "
    "Reply with a single number from 0 (surely wrong) to 100 (surely right) and nothing else."
)
VERBALIZE_PARAMS: dict[str, object] = {
    "temperature": 0,
    "max_tokens": 8,
    "response_format": None,
    "logprobs": None,
    "top_logprobs": None,
}
"""Sent with the verbalised-confidence question; ``None`` asks the engine to drop the rung's value
(a JSON ``response_format`` would otherwise force the number into the answer's schema)."""

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(%?)")


@dataclass(frozen=True, slots=True)
class Reading:
    """A confidence in [0, 1] and how it was obtained (for the verdict's detail)."""

    value: float
    how: str


def token_offsets(tokens: Sequence[TokenLogprob]) -> tuple[str, list[tuple[int, int]]]:
    """The text the tokens spell and each token's ``[start, end)`` character span in it."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for t in tokens:
        spans.append((pos, pos + len(t.token)))
        pos += len(t.token)
    return "".join(t.token for t in tokens), spans


def aggregate_probs(probs: Sequence[float], how: Aggregate, quantile: float = 0.1) -> float:
    """``min``; ``mean``: the geometric mean (exp of the mean logprob); ``quantile``: the q-quantile of
    the token probabilities, linearly interpolated (q=0.1 is the 10th percentile: a robust minimum)."""
    if not probs:
        raise ValueError("no token probabilities to aggregate")
    if how == "min":
        return min(probs)
    if how == "mean":
        return math.exp(sum(math.log(max(p, 1e-300)) for p in probs) / len(probs))
    ordered = sorted(probs)
    pos = quantile * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def value_token_indexes(tokens: Sequence[TokenLogprob]) -> list[int] | None:
    """Indexes of the tokens overlapping the *values* of the JSON the tokens spell (tokens of keys,
    quotes, braces, colons and commas only are left out). None when the tokens spell no JSON.
    A JSON text without scalar values (``{}``) gives the tokens of the whole JSON span."""
    text, spans = token_offsets(tokens)
    try:
        found = find_json(text)
        values = value_spans(text, found.start)
    except (JsonNotFound, ValueError):
        return None
    regions = [(v.start, v.end) for v in values if v.end > v.start] or [(found.start, found.end)]
    return [i for i, (s, e) in enumerate(spans) if any(s < ve and e > vs for vs, ve in regions)]


def label_probability(
    tokens: Sequence[TokenLogprob], start: int, labels: Sequence[str] | None = None
) -> tuple[float, int] | None:
    """The probability of the label whose text begins at character ``start``, from its first token.

    With token i the first token overlapping ``start`` (it may begin with a quote or space before the
    label: that prefix ``pre`` must begin every alternative counted), the confidence is
    ``p(chosen) / sum(p(a))`` over the chosen token and the distinct alternatives ``a`` of
    ``top_logprobs`` at that position that can begin a label: with ``labels`` given, those whose rest
    after ``pre`` is a prefix of some label or starts with one; without ``labels``, every alternative.
    With no alternatives returned this is the chosen token's raw probability. Returns
    ``(confidence, i)`` or None when no token covers ``start``.
    """
    text, spans = token_offsets(tokens)
    idx = next((i for i, (s, e) in enumerate(spans) if s <= start < e), None)
    if idx is None:
        return None
    chosen = tokens[idx]
    pre = text[spans[idx][0] : start]
    mass = {chosen.token: chosen.logprob}
    for alt, lp in chosen.top:
        if alt in mass or not _can_start(alt, pre, labels):
            continue
        mass[alt] = lp
    total = sum(math.exp(lp) for lp in mass.values())
    return math.exp(chosen.logprob) / total, idx


def _can_start(alt: str, pre: str, labels: Sequence[str] | None) -> bool:
    if labels is None:
        return True
    if not alt.startswith(pre):
        return False
    rest = alt[len(pre) :]
    return bool(rest) and any(lab.startswith(rest) or rest.startswith(lab) for lab in labels)


def parse_verbalized(reply: str) -> float | None:
    """A 0-100 number (or a fraction with a decimal point, at most 1) in the reply, as [0, 1]."""
    m = _NUMBER.search(reply)
    if m is None:
        return None
    value = float(m.group(1))
    if "." in m.group(1) and value <= 1 and not m.group(2):
        return value
    return value / 100 if value <= 100 else None


class Confidence(BaseValidator):
    """Accept when the model's confidence in its answer reaches ``threshold``. Reason ``low_confidence``;
    score = the confidence.

    What is measured, from ``Completion.logprobs``:

    * ``label_field="label"``: the answer is JSON and the confidence is that of the field's string value:
      its first token's probability normalised over the label-starting alternatives of
      ``top_logprobs`` (see :func:`label_probability`; give ``labels`` to say which are labels).
    * ``labels=[...]`` without ``label_field``: the whole answer is a label; same rule at its first token.
    * otherwise, JSON answers: ``aggregate`` over the tokens of the values only (not keys, punctuation);
      other answers: over all tokens. ``min``, ``mean`` (geometric) or ``quantile`` (``quantile=0.1``).

    No logprobs but ``Completion.confidence`` set (a replay of a recorded confidence): that is used.
    Neither: ``on_unavailable`` decides: ``"escalate"`` fails with reason ``confidence_unavailable``,
    ``"pass"`` passes with that reason noted, ``"verbalize"`` asks the same rung one extra question
    (``candidate.ask``: the conversation, the answer and :data:`VERBALIZE_PROMPT`) and reads a 0-100
    number from the reply. ``cost`` stays 1 (it orders checks: after local ones, before sampling ones)
    even though verbalising makes a call.
    """

    cost = 1
    soft = True  # a low confidence means a stronger model may do better

    request_params: ClassVar[dict[str, Any]] = {"logprobs": True, "top_logprobs": 10}
    """What the rung must send for this check to have something to measure (the engine adds it)."""

    def __init__(
        self,
        threshold: float,
        aggregate: Aggregate = "min",
        quantile: float = 0.1,
        on_unavailable: OnUnavailable = "escalate",
        label_field: str | None = None,
        *,
        labels: Sequence[str] | None = None,
        verbalize_prompt: str = VERBALIZE_PROMPT,
        name: str = "confidence",
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ConfigError(f"Confidence: threshold must be a probability in [0, 1], got {threshold!r}")
        if aggregate not in ("min", "mean", "quantile"):
            raise ConfigError(f"Confidence: aggregate must be 'min', 'mean' or 'quantile', got {aggregate!r}")
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 <= quantile <= 1:
            raise ConfigError(f"Confidence: quantile must be in [0, 1], got {quantile!r}")
        if on_unavailable not in ("escalate", "pass", "verbalize"):
            raise ConfigError(
                f"Confidence: on_unavailable must be 'escalate', 'pass' or 'verbalize', got {on_unavailable!r}"
            )
        if label_field is not None and (not isinstance(label_field, str) or not label_field):
            raise ConfigError(f"Confidence: label_field must be a non-empty field name, got {label_field!r}")
        if labels is not None and (
            isinstance(labels, str) or not labels or not all(isinstance(x, str) and x for x in labels)
        ):
            raise ConfigError(f"Confidence: labels must be a non-empty list of non-empty strings, got {labels!r}")
        self.threshold = float(threshold)
        self.aggregate: Aggregate = aggregate
        self.quantile = float(quantile)
        self.on_unavailable: OnUnavailable = on_unavailable
        self.label_field = label_field
        self.labels = tuple(labels) if labels is not None else None
        self.verbalize_prompt = verbalize_prompt
        self.name = name

    def measure(self, tokens: Sequence[TokenLogprob]) -> Reading | str:
        """The confidence the tokens carry, or why it cannot be read."""
        if self.label_field is not None or self.labels is not None:
            return self._label(tokens)
        indexes = value_token_indexes(tokens)
        what = "value tokens"
        if indexes is None:
            indexes, what = list(range(len(tokens))), "tokens"
        if not indexes:
            return "the answer has no tokens"
        probs = [math.exp(tokens[i].logprob) for i in indexes]
        conf = aggregate_probs(probs, self.aggregate, self.quantile)
        low = min(indexes, key=lambda i: tokens[i].logprob)
        return Reading(
            conf,
            f"{self.aggregate} over {len(indexes)} {what}; least sure {tokens[low].token!r} "
            f"p={math.exp(tokens[low].logprob):.2f}",
        )

    def _label(self, tokens: Sequence[TokenLogprob]) -> Reading | str:
        text, _ = token_offsets(tokens)
        if self.label_field is not None:
            try:
                found = find_json(text)
                spans = value_spans(text, found.start)
            except (JsonNotFound, ValueError):
                return f"the answer is not JSON, so field {self.label_field!r} has no tokens"
            span = next((s for s in spans if s.path == (self.label_field,)), None)
            if span is None or span.end == span.start:
                return f"the answer has no non-empty top-level field {self.label_field!r}"
            start, label = span.start, text[span.start : span.end]
        else:
            stripped = text.lstrip()
            if not stripped.strip():
                return "the answer is empty"
            start, label = len(text) - len(stripped), stripped.strip()
        got = label_probability(tokens, start, self.labels)
        if got is None:
            return "no token covers the label"
        conf, idx = got
        return Reading(conf, f"label {label[:60]!r}, first token {tokens[idx].token!r} normalised over alternatives")

    async def validate(self, candidate: Candidate) -> Verdict:
        completion = candidate.completion
        if completion.logprobs:
            reading = self.measure(completion.logprobs)
            if isinstance(reading, str):
                return await self._unavailable(candidate, reading)
        elif completion.confidence is not None:
            reading = Reading(float(completion.confidence), "recorded confidence")
        else:
            return await self._unavailable(
                candidate,
                "the completion has no token logprobs (send logprobs=True, top_logprobs=10 on the rung) "
                "and no recorded confidence",
            )
        return self._judge(reading)

    def _judge(self, reading: Reading) -> Verdict:
        detail = f"confidence {reading.value:.2f} (threshold {self.threshold:.2f}; {reading.how})"
        if reading.value < self.threshold:
            return Verdict(False, "low_confidence", reading.value, "too unsure: " + detail, self.name)
        return Verdict(True, "ok", reading.value, detail, self.name)

    async def _unavailable(self, candidate: Candidate, why: str) -> Verdict:
        if self.on_unavailable == "escalate":
            return Verdict(False, "confidence_unavailable", None, why, self.name)
        if self.on_unavailable == "pass":
            return Verdict(True, "confidence_unavailable", None, why + "; passed (on_unavailable='pass')", self.name)
        if candidate.asker is None:
            return Verdict(False, "confidence_unavailable", None, why + "; cannot verbalise (no asker)", self.name)
        messages = [
            *candidate.messages,
            {"role": "assistant", "content": candidate.text},
            {"role": "user", "content": self.verbalize_prompt},
        ]
        reply = await candidate.ask(messages, dict(VERBALIZE_PARAMS))
        value = parse_verbalized(reply.text)
        if value is None:
            return Verdict(
                False,
                "confidence_unavailable",
                None,
                f"{why}; the verbalised-confidence reply had no number from 0 to 100: {reply.text[:80]!r}",
                self.name,
            )
        return self._judge(Reading(value, f"verbalised: {reply.text.strip()[:20]!r}"))
