"""A fitted policy (``cascade tune``) run live: each rung's acceptance rule as a check, and the ladder.

The check computes the same features the fit used (``cascade.replay._policy.features``) from what a
live rung gives: the answer read from its text by the policy's answer rule, its confidence from the
token logprobs it was asked for (``Confidence.request_params``), further samples for self-consistency
(``candidate.sample``), and the earlier rungs' answers from ``Candidate.history``. So the policy
takes the same decisions over a recorded replay and over a real server (``tests/test_policy_live.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._types import Candidate, Verdict
from ..replay._policy import Policy, answer_key, features, judge, vote_keys
from ._base import BaseValidator
from ._choice import _bare
from ._confidence import Confidence
from ._jsontext import JsonNotFound, find_json

if TYPE_CHECKING:
    from .._ladder import Ladder
    from .._providers._base import Provider
    from .._types import Validator

ANSWER_KINDS = ("choice", "regex", "json", "text")


def check_answer_rule(rule: Any) -> dict[str, Any]:
    """The answer rule of a policy file, checked (ConfigError naming the field and value)."""
    if not isinstance(rule, Mapping) or rule.get("kind") not in ANSWER_KINDS:
        raise ConfigError(f"answer: expected {{'kind': one of {list(ANSWER_KINDS)}, ...}}, got {rule!r:.120}")
    if rule["kind"] == "choice":
        labels = rule.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise ConfigError(f"answer.labels: expected a non-empty list of strings, got {labels!r:.120}")
    if rule["kind"] == "regex":
        try:
            re.compile(str(rule.get("pattern")))
        except re.error as exc:
            raise ConfigError(f"answer.pattern: not a regular expression ({exc}): {rule.get('pattern')!r}") from None
    return dict(rule)


def extract(rule: Mapping[str, Any], text: str | None) -> Any:
    """The answer in ``text`` under ``rule`` (None when there is none): ``choice``: the bare text is
    one of ``labels``; ``regex``: the first group (or the match) of ``pattern``; ``json``: the JSON
    value; ``text``: the stripped text."""
    if text is None:
        return None
    kind = rule["kind"]
    if kind == "choice":
        bare = _bare(text)
        return bare if bare in rule["labels"] else None
    if kind == "regex":
        m = re.search(rule["pattern"], text)
        if m is None:
            return None
        return m.group(1) if m.groups() else m.group(0)
    if kind == "json":
        try:
            return find_json(text).value
        except JsonNotFound:
            return None
    return text.strip() or None


class PolicyCheck(BaseValidator):
    """Accept rung ``index`` of ``policy`` when its calibrated signal reaches the policy's threshold
    (the top rung always accepts). Reasons as the library's own checks: ``low_confidence``,
    ``low_agreement``, ``rungs_disagree``, ``confidence_unavailable``."""

    def __init__(self, policy: Policy, index: int) -> None:
        if not 0 <= index < len(policy.rungs):
            raise ConfigError(f"index: expected 0..{len(policy.rungs) - 1}, got {index!r}")
        rung = policy.rungs[index]
        if policy.validator == "consistency" and len(rung.w) > 2 and index < len(policy.rungs) - 1:
            raise ConfigError(
                f"rung {rung.model!r}: the policy votes over prompt variants (CoT/PoT), which a live rung does "
                "not produce; refit with one prompt variant"
            )
        self.policy, self.index, self.rule = policy, index, check_answer_rule(policy.answer)
        self.is_top = index == len(policy.rungs) - 1
        self.name = f"policy_{policy.validator}"
        reads_confidence = policy.validator == "confidence" and not self.is_top
        self.request_params: dict[str, Any] = dict(Confidence.request_params) if reads_confidence else {}
        self.cost = 10 if policy.validator == "consistency" else 1 if reads_confidence else 0
        self._confidence = Confidence(0.0, **policy.confidence)  # measured as the fit's data was

    def _confidence_of(self, candidate: Candidate) -> float | None:
        completion = candidate.completion
        if completion.logprobs:
            reading = self._confidence.measure(completion.logprobs)
            if not isinstance(reading, str):
                return reading.value
        return completion.confidence

    async def validate(self, candidate: Candidate) -> Verdict:
        answer = extract(self.rule, candidate.text)
        if self.is_top:
            return Verdict(True, "ok", None, "top rung", value=_parsed(candidate, answer))
        kind, rung = self.policy.validator, self.policy.rungs[self.index]
        key = answer_key(answer)
        if kind == "consistency":
            more = await candidate.sample(rung.k - 1) if rung.k > 1 else []
            keys = [key, *(answer_key(extract(self.rule, c.text)) for c in more)]
            winner, share = vote_keys(keys)
            raw: float | None = share
            feats: tuple[float, ...] | None = (share,)
            if winner is not None and winner != key:
                pick = next(c for c in more if answer_key(extract(self.rule, c.text)) == winner)
                answer, candidate.text = extract(self.rule, pick.text), pick.text
        else:
            previous = [answer_key(extract(self.rule, step.text)) for step in candidate.history[: self.index]]
            confidence = self._confidence_of(candidate) if kind == "confidence" else None
            if kind == "confidence" and confidence is None:
                return Verdict(False, "confidence_unavailable", None, "no token logprobs and no confidence", self.name)
            raw, feats = features(kind, key, confidence, previous if kind in ("confidence", "agreement") else ())
        passed, reason, p, detail = judge(self.policy, self.index, raw, feats)
        return Verdict(passed, reason, p, detail, self.name, value=_parsed(candidate, answer))


def _parsed(candidate: Candidate, answer: Any) -> Any:
    """The verdict's value: the answer the policy read, unless an earlier check (a schema) parsed the
    text already; its value (a pydantic model, say) is what ``result.parsed`` should hold."""
    return None if candidate.parsed is not None else answer


def load_policy(policy: Policy | str | Path) -> Policy:
    return policy if isinstance(policy, Policy) else Policy.load(policy)


def policy_ladder(
    policy: Policy | str | Path,
    providers: Provider | Mapping[str, Provider],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    checks: Mapping[str, Sequence[Validator]] | None = None,
) -> Ladder:
    """The policy's rungs as a :class:`Ladder`: each model on its provider (one for all, or one per
    model name), at the policy's prices, judged by its :class:`PolicyCheck`. ``params`` adds request
    params per model (``{"gpt-4o-mini": {"temperature": 0}}``); ``checks`` adds checks per model that
    run before the policy's rule (a schema, a grounding check): a rung that fails them escalates
    whatever its confidence."""
    from .._config import RequestParams
    from .._ladder import Ladder, Rung

    pol = load_policy(policy)
    rungs = []
    for j, r in enumerate(pol.rungs):
        if isinstance(providers, Mapping):
            provider = providers.get(r.model)
            if provider is None:
                raise ConfigError(f"providers: no provider for the policy's model {r.model!r}; got {sorted(providers)}")
        else:
            provider = providers
        extra = dict((params or {}).get(r.model, {}))
        rungs.append(
            Rung(
                name=r.model,
                provider=provider,
                model=r.model,
                price_in=r.price_in,
                price_out=r.price_out,
                params=RequestParams(**extra),
                validators=[*(checks or {}).get(r.model, ()), PolicyCheck(pol, j)],
            )
        )
    return Ladder(rungs, order="as_given")  # the fitted order (by recorded cost per query) is deliberate
