"""The validator that runs a fitted policy's signal inside a real ``Cascade`` over a ReplayProvider.

It reads what the engine gave it: ``Completion.confidence`` for confidence, further samples drawn
through ``candidate.sample`` for self-consistency, and the answers earlier rungs were served (kept
by the provider) for agreement. The answer and its recorded correctness go into ``Verdict.value``
so ``CascadeResult.parsed`` says whether the cascade was right.
"""

from __future__ import annotations

from typing import Any

from ..validators._base import BaseValidator, Candidate, Verdict
from ._policy import Policy, answer_key, vote
from ._provider import ReplayProvider


class ReplaySignal(BaseValidator):
    """Accept rung ``index`` of ``policy`` when its calibrated signal reaches the threshold."""

    cost = 10

    def __init__(self, policy: Policy, index: int, provider: ReplayProvider) -> None:
        self.policy, self.index, self.provider = policy, index, provider
        self.name = f"replay_{policy.validator}"

    async def validate(self, candidate: Candidate) -> Verdict:
        served = self.provider.served(candidate.completion)
        rung = self.policy.rungs[self.index]
        kind = self.policy.validator
        chosen = served.sample
        raw: float | None
        if kind == "consistency" and rung.k > 1:
            more = await candidate.sample(rung.k - 1)
            voted, raw = vote([served.sample, *(self.provider.served(c).sample for c in more)])
            chosen = voted if voted is not None else served.sample
        elif kind == "confidence":
            raw = candidate.completion.confidence
        elif kind == "schema":
            raw = 1.0 if chosen.answer is not None else 0.0
        elif kind == "agreement":
            history = self.provider.history(served.record.id)
            previous = [answer_key(history[m].sample.answer) for m in self.policy.models[: self.index]]
            key = answer_key(chosen.answer)
            raw = (sum(1 for p in previous if key is not None and p == key) / len(previous)) if previous else 0.0
        else:
            raw = 0.0
        value: dict[str, Any] = {"answer": chosen.answer, "correct": bool(chosen.correct)}
        if self.index == len(self.policy.rungs) - 1:
            return Verdict(True, "ok", None, "top rung", value=value, text=chosen.text)
        p = rung.probability(kind, raw)
        passed = p >= self.policy.threshold
        reason = "ok" if passed else {"confidence": "low_confidence", "consistency": "low_agreement"}.get(
            kind, "rungs_disagree")
        return Verdict(passed, reason, p, f"calibrated {p:.3f} vs threshold {self.policy.threshold:.3f}",
                       value=value, text=chosen.text)
