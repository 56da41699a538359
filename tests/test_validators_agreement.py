"""Agreement between rungs, live: the check reads the earlier rungs' answers from the request's history."""

from __future__ import annotations

import pytest

from cascade import Cascade, Completion, CompletionRequest, ConfigError, FunctionProvider, Rung
from cascade.validators import Agreement, check

MSG = [{"role": "user", "content": "2+2? Reply with one letter."}]


def _cascade(answers: dict[str, str], checks: dict[str, object], confidence: dict[str, float] | None = None) -> Cascade:
    def model(request: CompletionRequest) -> Completion:
        conf = (confidence or {}).get(request.model)
        return Completion(text=answers[request.model], tokens_in=10, tokens_out=1, model=request.model, confidence=conf)

    provider = FunctionProvider(model)
    rungs = [
        Rung(name=m, provider=provider, model=m, price_in=p, price_out=p, validators=checks.get(m, []))
        for m, p in (("a", 1.0), ("b", 2.0), ("c", 10.0))
    ]
    return Cascade(rungs, on_exhausted="best_effort")


def test_a_rung_that_agrees_with_an_earlier_one_is_accepted() -> None:
    never = check(lambda c: False, name="never")  # a's own check escalates, so b sees a's answer
    res = _cascade({"a": " A.", "b": "a", "c": "C"}, {"a": never, "b": Agreement()}).run_sync(MSG)
    assert res.answered_by == "b" and res.output == "a"
    verdict = res.attempts[1].verdicts[0]
    assert verdict.passed and verdict.score == 1.0 and "a" in verdict.detail
    res = _cascade({"a": "A", "b": "B", "c": "C"}, {"a": never, "b": Agreement()}).run_sync(MSG)
    assert res.answered_by == "c"
    assert res.attempts[1].reasons == ["rungs_disagree"]


def test_the_cheapest_rung_has_nothing_to_agree_with_and_says_so() -> None:
    res = _cascade({"a": "A", "b": "A", "c": "A"}, {"a": Agreement(), "b": Agreement()}).run_sync(MSG)
    assert res.attempts[0].reasons == ["no_earlier_answer"]
    assert res.answered_by == "b"  # b agrees with a's (escalated) answer


def test_a_vote_of_earlier_rungs_and_named_rungs() -> None:
    never = check(lambda c: False, name="never")
    majority = Agreement(min_share=0.5, min_votes=2)
    # c agrees with a only: 1 of 2 earlier rungs, below min_votes=2
    res = _cascade({"a": "A", "b": "B", "c": "A"}, {"a": never, "b": never, "c": majority}).run_sync(MSG)
    assert not res.accepted and res.attempts[2].reasons == ["rungs_disagree"]
    only_b = Agreement(rungs=["b"])
    res = _cascade({"a": "A", "b": "B", "c": "A"}, {"a": never, "b": never, "c": only_b}).run_sync(MSG)
    assert not res.accepted  # agrees with a, but only b's answer counts
    res = _cascade({"a": "A", "b": "B", "c": "B"}, {"a": never, "b": never, "c": Agreement(rungs=[1])}).run_sync(MSG)
    assert res.accepted and res.answered_by == "c"


def test_with_confidence_only_sure_earlier_answers_vote() -> None:
    never = check(lambda c: False, name="never")
    sure = Agreement(min_confidence=0.8)
    res = _cascade({"a": "A", "b": "A", "c": "C"}, {"a": never, "b": sure}, {"a": 0.6}).run_sync(MSG)
    assert res.answered_by == "c"
    res = _cascade({"a": "A", "b": "A", "c": "C"}, {"a": never, "b": sure}, {"a": 0.9}).run_sync(MSG)
    assert res.answered_by == "b"


def test_answer_rule_normalises_before_comparing() -> None:
    never = check(lambda c: False, name="never")
    letter = Agreement(answer={"kind": "regex", "pattern": r"^\s*\(?([A-D])\b"})
    res = _cascade({"a": "(B) because", "b": "B. Four", "c": "C"}, {"a": never, "b": letter}).run_sync(MSG)
    assert res.answered_by == "b"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_votes": 0}, "min_votes"),
        ({"min_share": 1.5}, "min_share"),
        ({"min_confidence": -1}, "min_confidence"),
        ({"rungs": "b"}, "rungs"),
        ({"answer": {"kind": "tea"}}, "answer"),
        ({"answer": 3}, "answer"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Agreement(**kwargs)  # type: ignore[arg-type]
