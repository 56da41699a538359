"""A fitted replay ladder ("policy") and the per-rung signal it thresholds.

The same functions score a rung in the fast fitting path (``_fit``) and in the validators that run
inside a real ``Cascade`` (``_validators``), so both paths take the same decisions by construction
(``tests/test_replay_cascade.py`` checks it).

Signals (``validator``):
* ``confidence``: the recorded ``confidence`` of ``samples[0]`` (logit), calibrated on train;
* ``consistency``: the share of the first ``k`` samples that vote for the majority answer;
* ``agreement``: the share of the earlier rungs whose answer equals this rung's answer;
* ``schema``: 1 if the output parsed (recorded ``answer`` is not null), else 0.
A non-top rung accepts when its calibrated probability ``sigmoid(w . features) >= threshold``
(features: :func:`signal`); the top rung always accepts.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigError
from ._data import Record, Sample
from ._provider import Order, sample_cost, sample_order

Kind = Literal["confidence", "consistency", "agreement", "schema"]
KINDS: tuple[str, ...] = ("confidence", "consistency", "agreement", "schema")
POLICY_FORMAT = "cascade-policy"
POLICY_VERSION = 3
DEFAULT_CONFIDENCE: dict[str, Any] = {"aggregate": "mean"}
"""The confidence reading of a policy file that names none (versions 1 and 2)."""
CONFIDENCE_OPTIONS = ("aggregate", "quantile", "label_field", "labels")
"""The :class:`~cascade.validators.Confidence` options a policy file may set."""
_OLD_FORMATS = ("cascade-replay-policy",)


def check_confidence_reading(reading: Any, where: str) -> dict[str, Any]:
    """``reading`` when it is a dict of :data:`CONFIDENCE_OPTIONS`, else a ``ConfigError`` naming ``where``."""
    if not isinstance(reading, dict) or set(reading) - set(CONFIDENCE_OPTIONS):
        raise ConfigError(
            f"{where}: expected a dict of Confidence options among {list(CONFIDENCE_OPTIONS)}, got {reading!r:.120}"
        )
    return reading  # version 1: no answer rule, read as {"kind": "text"}


def answer_key(answer: Any) -> str | None:
    """A hashable, order-independent key for a normalised answer (None stays None)."""
    return None if answer is None else json.dumps(answer, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class RungOutcome:
    """What one rung yields on one record: its answer, whether it is right, what it cost, its signal
    (``raw``: the headline number; ``feats``: the calibrator's inputs, None when there is no signal)."""

    key: str | None
    answer: Any
    correct: bool
    cost: float
    raw: float | None
    feats: tuple[float, ...] | None = None
    check_cost: float = 0.0  # paid on top of ``cost`` when the rung's check runs (not on the top rung)


def vote_keys(keys: Sequence[str | None]) -> tuple[str | None, float]:
    """Majority over answer keys (ties: earliest; None never wins) and its share of all keys."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    top = max(counts.values())
    return next(k for k in keys if k is not None and counts[k] == top), top / len(keys)


def vote(samples: Sequence[Sample]) -> tuple[Sample | None, float]:
    """Majority vote over the samples' answers (ties: earliest); returns a sample carrying the
    majority answer and the share of all samples that voted for it."""
    keys = [answer_key(s.answer) for s in samples]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    top = max(counts.values())
    for s, k in zip(samples, keys, strict=True):
        if k is not None and counts[k] == top:
            return s, top / len(samples)
    return None, 0.0  # pragma: no cover - unreachable


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def features(
    kind: str, key: str | None, confidence: float | None, previous: Sequence[str | None] = ()
) -> tuple[float | None, tuple[float, ...] | None]:
    """The raw signal and calibrator features of one answer, live or replayed alike (``key``: its
    :func:`answer_key`; ``previous``: the earlier rungs' keys). Consistency has its own (:func:`signal`).

    * confidence: logit(confidence), then 1/0 per earlier rung agreeing with this answer;
    * agreement: the share of earlier rungs agreeing; schema: 1/0 the answer parsed."""
    agree = tuple(1.0 if key is not None and p == key else 0.0 for p in previous)
    if kind == "confidence":
        if confidence is None:
            return None, None
        return confidence, (_logit(confidence), *agree)
    if kind == "agreement":
        raw = sum(agree) / len(agree) if agree else 0.0
        return raw, (raw,)
    if kind == "schema":
        raw = 1.0 if key is not None else 0.0
        return raw, (raw,)
    raise ConfigError(f"validator: expected one of {list(KINDS)}, got {kind!r}")


def signal(
    kind: str, samples: Sequence[Sample], previous: Sequence[str | None] = ()
) -> tuple[Sample, float | None, tuple[float, ...] | None]:
    """The rung's answer, raw signal and features from the samples it was served.

    * confidence: logit(confidence), then 1/0 per earlier rung agreeing with this answer;
    * consistency: the majority share, then 1/0 "every prompt variant's majority is the same
      answer" when the samples mix variants (MoT's CoT/PoT check);
    * agreement: the share of earlier rungs agreeing; schema: 1/0 parsed.
    """
    s = samples[0]
    if kind == "consistency":
        if len(samples) < 2:
            return s, 0.0, (0.0,)
        chosen, share = vote(samples)
        variants: dict[str | None, list[Sample]] = {}
        for x in samples:
            variants.setdefault(x.variant, []).append(x)
        feats: tuple[float, ...] = (share,)
        if len(variants) > 1:
            majors = [answer_key(v.answer) if v is not None else None for v in (vote(g)[0] for g in variants.values())]
            same = majors[0] is not None and all(m == majors[0] for m in majors)
            feats = (share, 1.0 if same else 0.0)
        return (chosen if chosen is not None else s), share, feats
    raw, feats_ = features(kind, answer_key(s.answer), s.confidence, previous)
    return s, raw, feats_


def rung_outcome(
    kind: str,
    record: Record,
    model: str,
    *,
    k: int = 1,
    previous: Sequence[str | None] = (),
    prices: tuple[float, float] = (0.0, 0.0),
    order: Order = "interleave",
) -> RungOutcome:
    """Score ``model`` on ``record`` as the validator would see it (``previous``: earlier rungs' keys)."""
    entry = record.responses[model]
    served = sample_order(entry, order)[: max(1, min(k, len(entry.samples)))]
    samples = [entry.samples[i] for i in served]
    cost = sample_cost(entry, served, *prices)
    s, raw, feats = signal(kind, samples, previous)
    check_cost = entry.confidence_cost_usd if kind == "confidence" else 0.0
    return RungOutcome(answer_key(s.answer), s.answer, bool(s.correct), cost, raw, feats, check_cost)


REASONS = {"confidence": "low_confidence", "consistency": "low_agreement"}
"""The escalation reason of a rung whose calibrated signal is below the threshold (else ``rungs_disagree``)."""


def judge(policy: Policy, index: int, raw: float | None, feats: Sequence[float] | None) -> tuple[bool, str, float, str]:
    """Rung ``index``'s decision on its signal: (passed, reason, calibrated score, detail); shared by the
    live check and the replay one so both decide alike."""
    p = policy.rungs[index].probability(raw, feats)
    passed = p >= policy.threshold
    reason = "ok" if passed else REASONS.get(policy.validator, "rungs_disagree")
    return passed, reason, p, f"calibrated {p:.3f} vs threshold {policy.threshold:.3f}"


@dataclass
class RungPolicy:
    """One rung of a fitted ladder: the model, its sample count and calibration
    ``sigmoid(w[0] + w[1:] . features)`` (see :func:`signal` for the features)."""

    model: str
    k: int = 1
    w: list[float] = field(default_factory=lambda: [0.0, 1.0])
    price_in: float = 0.0
    price_out: float = 0.0
    identity: bool = False  # uncalibrated: the raw signal is the score (``--thresholds``)

    def probability(self, raw: float | None, feats: Sequence[float] | None) -> float:
        if self.identity:
            return 0.0 if raw is None else float(raw)
        if feats is None:
            return 0.0
        if len(feats) != len(self.w) - 1:
            raise ConfigError(f"rung {self.model!r}: {len(feats)} features but {len(self.w) - 1} weights")
        z = self.w[0] + sum(wi * fi for wi, fi in zip(self.w[1:], feats, strict=True))
        return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass
class Policy:
    """A ladder fitted on labelled data: rungs cheapest first, one threshold on calibrated scores."""

    dataset: str
    validator: str
    rungs: list[RungPolicy]
    threshold: float
    order: Order = "interleave"
    target: str = "agreement"
    epsilon: float = 0.05
    delta: float = 0.1
    method: str = "ltt"
    fit: dict[str, Any] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=lambda: {"kind": "text"})
    """How a live check reads the answer from a rung's text (``cascade.validators._policy.extract``):
    ``{"kind": "choice", "labels": [...]}``, ``{"kind": "regex", "pattern": ...}``, ``json`` or ``text``."""
    confidence: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONFIDENCE))
    """How a live check measures a rung's confidence from its token logprobs: the options of
    :class:`~cascade.validators.Confidence` (``aggregate``, ``label_field``, ``labels``, ...), as the
    recorded confidences were measured (the dataset's catalog entry: ``"confidence_reading": {...}``),
    so replay and live read the same number. Version 3; older files: the mean over the tokens."""

    def __post_init__(self) -> None:
        if self.validator not in KINDS:
            raise ConfigError(f"validator: expected one of {list(KINDS)}, got {self.validator!r}")
        if not self.rungs:
            raise ConfigError("rungs: a policy needs at least one rung, got []")
        check_confidence_reading(self.confidence, "confidence")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float))
            or not 0.0 <= self.threshold <= 1.0
        ):
            raise ConfigError(f"threshold: expected a number in [0, 1], got {self.threshold!r}")

    @property
    def models(self) -> list[str]:
        return [r.model for r in self.rungs]

    def decide(self, record: Record) -> tuple[int, RungOutcome, float]:
        """Walk the ladder on one record: (index of the answering rung, its outcome, total cost)."""
        previous: list[str | None] = []
        total = 0.0
        for j, rung in enumerate(self.rungs):
            out = rung_outcome(
                self.validator,
                record,
                rung.model,
                k=rung.k,
                previous=previous,
                prices=(rung.price_in, rung.price_out),
                order=self.order,
            )
            total += out.cost
            if j == len(self.rungs) - 1:
                return j, out, total
            total += out.check_cost
            if rung.probability(out.raw, out.feats) >= self.threshold:
                return j, out, total
            previous.append(out.key)
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def signals(self) -> list[str]:
        """What the live rungs must supply: ``logprobs`` (confidence), ``samples`` (self-consistency),
        ``history`` (a rung weighs the earlier rungs' answers)."""
        cheap = self.rungs[:-1]
        out = []
        if self.validator == "confidence" and cheap:
            out.append("logprobs")
        if self.validator == "consistency" and any(r.k > 1 for r in cheap):
            out.append("samples")
        if (self.validator == "agreement" and cheap) or any(len(r.w) > 2 and not r.identity for r in cheap):
            out.append("history")
        return out

    @property
    def guarantee(self) -> dict[str, Any]:
        """What the fit certified, on which data (also written to the policy file)."""
        f = self.fit
        return {
            "target": self.target,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "method": self.method,
            "risk_bound": f.get("risk_bound"),
            "certified": f.get("certified_ok"),
            "data": {"dataset": self.dataset, "split": f.get("split"), "records": f.get("n")},
        }

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        return {"format": POLICY_FORMAT, "version": POLICY_VERSION, **body, "signals": self.signals,
                "guarantee": self.guarantee}  # fmt: skip

    def save(self, path: str | Path) -> None:
        try:
            Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"policy file {str(path)!r}: cannot write it: {exc.strerror or exc}") from None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        if not isinstance(data, dict) or data.get("format") not in (POLICY_FORMAT, *_OLD_FORMATS):
            data = data if isinstance(data, dict) else {"format": type(data).__name__}
            raise ConfigError(f"format: expected {POLICY_FORMAT!r}, got {data.get('format')!r}")
        version = data.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= POLICY_VERSION:
            raise ConfigError(f"version: expected 1..{POLICY_VERSION}, got {version!r} (a newer cascade wrote it?)")
        derived = ("format", "version", "signals", "guarantee")  # recomputed from the rest
        body = {k: v for k, v in data.items() if k not in derived}
        try:
            body["rungs"] = [RungPolicy(**r) for r in body.get("rungs", [])]
            return cls(**body)
        except TypeError as exc:
            raise ConfigError(f"policy: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"policy file {str(path)!r}: {exc}") from None
        return cls.from_json(data)
