from __future__ import annotations

import random

import pytest
from _validator_data import Rung, verdict
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cascade._errors import ConfigError
from cascade.validators import JsonSchema, SelfConsistency
from cascade.validators._consistency import majority


def test_majority_passes_and_asks_for_k_minus_1_samples() -> None:
    rung = Rung(
        samples=[
            '{"label": "billing"}',
            '{"label":"billing"}',
            '{"label": "refund"}',
            '```json\n{"label": "billing"}\n```',
        ]
    )
    v = verdict(SelfConsistency(samples=5, threshold=0.6), rung.candidate('{ "label" : "billing" }'))
    assert rung.sample_calls == [4]
    assert v.passed and v.score == pytest.approx(0.8)
    assert v.text == '{ "label" : "billing" }' and v.value == {"label": "billing"}
    assert "4 of 5 answers agree" in v.detail


def test_low_agreement() -> None:
    rung = Rung(samples=['{"label": "refund"}', '{"label": "account"}', '{"label": "billing"}', '{"label": "x"}'])
    v = verdict(SelfConsistency(5, 0.6), rung.candidate('{"label": "billing"}'))
    assert not v.passed and v.reason == "low_agreement" and v.score == pytest.approx(0.4)
    assert v.text is None and v.value is None
    assert "share 0.40, threshold 0.60" in v.detail


def test_majority_sample_replaces_a_minority_candidate() -> None:
    rung = Rung(samples=['{"label": "refund", "n": 1}', '{"n": 1, "label": "refund"}'])
    v = verdict(SelfConsistency(3, 0.6), rung.candidate('{"label": "billing", "n": 1}'))
    assert v.passed and v.text == '{"label": "refund", "n": 1}' and v.value == {"label": "refund", "n": 1}


def test_unreadable_samples_are_each_their_own_answer() -> None:
    rung = Rung(samples=["Sorry, I cannot help.", "Sorry, I cannot help.", "Sorry, I cannot help."])
    v = verdict(SelfConsistency(4, 0.5), rung.candidate('{"label": "billing"}'))
    assert not v.passed and v.score == pytest.approx(0.25)
    assert "3 answer(s) could not be read" in v.detail


def test_key_by_field_and_function() -> None:
    samples = ['{"label": "billing", "why": "charged twice"}', '{"label": "billing", "why": "double charge"}']
    first = '{"label": "billing", "why": "two charges"}'
    assert not verdict(SelfConsistency(3, 0.6), Rung(samples).candidate(first)).passed
    v = verdict(SelfConsistency(3, 0.6, key="label"), Rung(samples).candidate(first))
    assert v.passed and v.score == 1.0 and v.value["why"] == "two charges"
    v = verdict(SelfConsistency(3, 0.6, key=lambda p: p["label"].upper()), Rung(samples).candidate(first))
    assert v.passed and v.score == 1.0
    # a sample without the field is its own answer
    v = verdict(SelfConsistency(3, 0.6, key="label"), Rung(['{"x": 1}', "{}"]).candidate(first))
    assert not v.passed and v.score == pytest.approx(1 / 3)


def test_text_answers_normalised() -> None:
    rung = Rung(samples=["  paris", "PARIS\n", "Lyon"])
    v = verdict(SelfConsistency(4, 0.75), rung.candidate("Paris"))
    assert v.passed and v.score == 0.75 and v.value is None and v.text == "Paris"
    rung = Rung(samples=["The answer is [1]", "the  answer is [1]"])
    v = verdict(SelfConsistency(3, 1.0, parse="text"), rung.candidate("The answer is [1]"))
    assert v.passed


def test_ties_keep_the_first_seen_answer() -> None:
    rung = Rung(samples=['"b"', '"a"', '"b"'])
    v = verdict(SelfConsistency(4, 0.5, parse="json"), rung.candidate('"a"'))
    assert v.passed and v.text == '"a"' and v.score == 0.5
    assert majority(["x", "y", "y", "x"]).label == "x"
    assert majority([None, "y", "x"]).label == "y"
    assert majority([None, None]).label is None


def test_missing_samples_count_as_disagreement() -> None:
    rung = Rung(samples=['{"a": 1}'])  # the rung returned 1 of the 4 samples asked for
    v = verdict(SelfConsistency(5, 0.6), rung.candidate('{"a": 1}'))
    assert not v.passed and v.score == pytest.approx(0.4) and "3 sample(s) missing" in v.detail


class Label(BaseModel):
    label: str


def test_keeps_the_pydantic_model_and_checks_samples_against_it() -> None:
    rung = Rung(samples=['{"label": "billing"}', '{"label": 3}', '{"label": "billing"}'])
    c = rung.candidate('{"label": "billing"}', parsed=Label(label="billing"))
    v = verdict(SelfConsistency(4, 0.75), c)
    assert v.passed and isinstance(v.value, Label) and v.score == 0.75
    # parse= with a schema: samples failing the schema are their own answers
    schema = JsonSchema({"type": "object", "properties": {"label": {"enum": ["billing", "refund"]}}})
    rung = Rung(samples=['{"label": "bill"}', '{"label": "bill"}'])
    v = verdict(SelfConsistency(3, 0.6, parse=schema.parse), rung.candidate('{"label": "billing"}'))
    assert not v.passed and v.score == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": 1}, "samples must be an int >= 2"),
        ({"samples": True}, "samples must be"),
        ({"threshold": 0}, r"threshold must be a share in \(0, 1\], got 0"),
        ({"threshold": 1.5}, "got 1.5"),
        ({"key": 3}, "key must be a field name or a function, got 3"),
        ({"parse": "yaml"}, "parse must be .* got 'yaml'"),
    ],
)
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SelfConsistency(**kwargs)  # type: ignore[arg-type]


LABELS = st.sampled_from(["billing", "refund", "account", "shipping"])


@settings(max_examples=60, deadline=None)
@given(st.lists(LABELS, min_size=2, max_size=8), st.randoms(use_true_random=False))
def test_share_bounds_and_permutation_invariance(labels: list[str], rnd: random.Random) -> None:
    k = len(labels)
    answers = [f'{{"label": "{lab}"}}' for lab in labels]
    v = verdict(SelfConsistency(k, 1.0), Rung(answers[1:]).candidate(answers[0]))
    assert v.score is not None and 1 / k <= v.score <= 1
    assert v.score == max(labels.count(x) for x in labels) / k
    shuffled = answers[:]
    rnd.shuffle(shuffled)
    w = verdict(SelfConsistency(k, 1.0), Rung(shuffled[1:]).candidate(shuffled[0]))
    assert w.score == v.score


@settings(max_examples=60, deadline=None)
@given(st.lists(LABELS, min_size=2, max_size=8), st.floats(0.01, 1.0), st.floats(0.01, 1.0))
def test_threshold_monotonicity(labels: list[str], t1: float, t2: float) -> None:
    lo, hi = sorted((t1, t2))
    answers = [f'"{lab}"' for lab in labels]
    k = len(labels)
    v_hi = verdict(SelfConsistency(k, hi, parse="json"), Rung(answers[1:]).candidate(answers[0]))
    v_lo = verdict(SelfConsistency(k, lo, parse="json"), Rung(answers[1:]).candidate(answers[0]))
    if v_hi.passed:
        assert v_lo.passed
    assert v_hi.passed == (v_hi.score is not None and v_hi.score >= hi)
