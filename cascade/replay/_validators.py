"""The validator that runs a fitted policy's signal inside a real ``Cascade`` over a ReplayProvider.

It reads what the engine gave it: ``Completion.confidence`` for confidence, further samples drawn
through ``candidate.sample`` for self-consistency, and the answers earlier rungs were served (kept
by the provider) for agreement. The answer and its recorded correctness go into ``Verdict.value``
so ``CascadeResult.parsed`` says whether the cascade was right.
"""

from __future__ import annotations

from typing import Any

from ..validators._base import BaseValidator, Candidate, Verdict
from ._policy import Policy, answer_key, judge, signal
from ._provider import CONFIDENCE_CALL, ReplayProvider


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
        samples = [served.sample]
        if kind == "consistency" and rung.k > 1:
            samples += [self.provider.served(c).sample for c in await candidate.sample(rung.k - 1)]
        previous: list[str | None] = []
        if self.index > 0:
            history = self.provider.history(served.record.id)
            previous = [answer_key(history[m].sample.answer) for m in self.policy.models[: self.index]]
        if kind == "confidence" and candidate.completion.confidence != served.sample.confidence:
            raise ValueError("the completion's confidence differs from the recorded one")
        is_top = self.index == len(self.policy.rungs) - 1
        if kind == "confidence" and not is_top and served.record.responses[served.model].confidence_cost_usd > 0:
            await candidate.ask(candidate.messages, {CONFIDENCE_CALL: True})  # the recorded "is this right?" call
        chosen, raw, feats = signal(kind, samples, previous if kind in ("confidence", "agreement") else ())
        value: dict[str, Any] = {"answer": chosen.answer, "correct": bool(chosen.correct)}
        if self.index == len(self.policy.rungs) - 1:
            return Verdict(True, "ok", None, "top rung", value=value, text=chosen.text)
        passed, reason, p, detail = judge(self.policy, self.index, raw, feats)
        return Verdict(passed, reason, p, detail, value=value, text=chosen.text)
