from __future__ import annotations

import pytest
from _validator_data import MESSAGES, Rung, candidate, run, verdict
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade._errors import ConfigError
from cascade.validators import (
    AllOf,
    AnyOf,
    BaseValidator,
    Check,
    Choice,
    Confidence,
    JsonSchema,
    Regex,
    SelfConsistency,
    Verdict,
    check,
    feedback_message,
    reask_messages,
)
from cascade.validators._base import validator_name

LABEL_SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def const(ok: bool, name: str) -> Check:
    return check(lambda _c: ok, name=name)


@settings(max_examples=40, deadline=None)
@given(st.booleans(), st.booleans())
def test_and_or_truth_tables(a: bool, b: bool) -> None:
    va, vb = const(a, "a"), const(b, "b")
    both = verdict(va & vb, candidate("x"))
    either = verdict(va | vb, candidate("x"))
    assert both.passed == (a and b)
    assert either.passed == (a or b)
    if not both.passed:
        assert both.reason == ("custom:a" if not a else "custom:b")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_flattening_is_associative(flags: list[bool]) -> None:
    vs = [const(f, f"c{i}") for i, f in enumerate(flags)]
    left: BaseValidator = vs[0]
    for v in vs[1:]:
        left = left & v
    right: BaseValidator = vs[-1]
    for v in reversed(vs[:-1]):
        right = v & right
    if len(vs) > 1:
        assert isinstance(left, AllOf) and isinstance(right, AllOf)
        assert left.validators == right.validators == tuple(vs)
    assert verdict(left, candidate("x")).passed == verdict(right, candidate("x")).passed == all(flags)
    anyv: BaseValidator = vs[0]
    for v in vs[1:]:
        anyv = anyv | v
    if len(vs) > 1:
        assert isinstance(anyv, AnyOf) and anyv.validators == tuple(vs)
    assert verdict(anyv, candidate("x")).passed == any(flags)


def test_short_circuit_no_samples_after_a_bad_schema() -> None:
    rung = Rung(samples=['{"label": "a"}'] * 4)
    combo = SelfConsistency(5, 0.6) & JsonSchema(LABEL_SCHEMA)  # written expensive first; runs cheapest first
    assert [validator_name(v) for v in combo.validators] == ["json_schema", "self_consistency"]
    v = verdict(combo, rung.candidate("not json at all"))
    assert not v.passed and v.reason == "json_unparseable"
    assert rung.sample_calls == []
    assert [leaf.validator for leaf in v.leaves()] == ["json_schema"]


def test_all_of_passes_values_along() -> None:
    rung = Rung(samples=['{"label": "refund"}', '{"label": "refund"}'])
    combo = JsonSchema(LABEL_SCHEMA) & Choice(["billing", "refund"], field="label") & SelfConsistency(3, 0.6)
    c = rung.candidate('{"label": "billing"}')
    v = verdict(combo, c)
    assert v.passed and c.text == '{"label": "refund"}' and v.value == {"label": "refund"}
    assert [leaf.score for leaf in v.leaves()] == [None, None, pytest.approx(2 / 3)]


@settings(max_examples=30, deadline=None)
@given(st.booleans(), st.booleans(), st.booleans())
def test_mixed_expression(a: bool, b: bool, c: bool) -> None:
    expr = (const(a, "a") | const(b, "b")) & const(c, "c")
    assert verdict(expr, candidate("x")).passed == ((a or b) and c)


def test_any_of_stops_at_first_pass() -> None:
    rung = Rung(samples=["x"] * 10)
    v = verdict(Regex(r"^\d+$") | SelfConsistency(3, 0.5), rung.candidate("42"))
    assert v.passed and rung.sample_calls == []


# -- custom checks ---------------------------------------------------------------------------------


def test_regex() -> None:
    assert verdict(Regex(r"\d{4}-\d{2}-\d{2}"), candidate("Date: 2024-05-01.")).passed
    v = verdict(Regex(r"\d{4}-\d{2}-\d{2}", mode="fullmatch", name="iso_date"), candidate("Date: 2024-05-01."))
    assert not v.passed and v.reason == "regex_mismatch" and v.validator == "iso_date"
    assert "must match the whole of" in v.detail and "'Date: 2024-05-01.'" in v.detail
    with pytest.raises(ConfigError, match=r"pattern '\(' does not compile"):
        Regex("(")
    with pytest.raises(ConfigError, match="mode must be"):
        Regex("a", mode="match")  # type: ignore[arg-type]


def test_choice_text_and_field() -> None:
    labels = ["billing", "refund"]
    assert verdict(Choice(labels), candidate(' "billing".\n')).passed
    v = verdict(Choice(labels), candidate("Billing"))
    assert v.reason == "label_not_allowed" and "must be one of 'billing', 'refund'; got 'Billing'" in v.detail
    assert verdict(Choice(labels, case_sensitive=False), candidate("Billing")).passed
    assert verdict(Choice(labels, field="label"), candidate('```json\n{"label": "refund"}\n```')).passed
    v = verdict(Choice(labels, field="label"), candidate('{"label": "shipping"}'))
    assert v.reason == "label_not_allowed" and "field 'label'" in v.detail
    assert verdict(Choice(labels, field="label"), candidate("refund")).reason == "json_unparseable"
    assert "no field 'label'" in verdict(Choice(labels, field="label"), candidate('{"x": 1}')).detail
    with pytest.raises(ConfigError, match="labels must be a non-empty list of strings, got 'billing'"):
        Choice("billing")


def test_check_with_a_predicate_and_a_verdict() -> None:
    @check(name="short")
    def short(c: object) -> bool:
        return len(getattr(c, "text", "")) < 10

    assert verdict(short, candidate("ok")).passed
    v = verdict(short, candidate("far too long an answer"))
    assert v.reason == "custom:short"

    async def scored(c: object) -> Verdict:
        return Verdict(False, "custom:polite", 0.2, "the answer is rude")

    v = verdict(check(scored, name="polite"), candidate("no."))
    assert v.reason == "custom:polite" and v.score == 0.2 and v.validator == "polite"


def test_a_crashing_check_fails_closed() -> None:
    def boom(c: object) -> bool:
        return bool(1 / 0)

    v = verdict(check(boom, name="boom"), candidate("x"))
    assert not v.passed and v.reason == "validator_error" and "ZeroDivisionError" in v.detail


# -- feedback ----------------------------------------------------------------------------------------


def test_feedback_message_lists_failed_leaves_with_hints() -> None:
    combo = JsonSchema(LABEL_SCHEMA) & Choice(["billing"], field="label")
    v = verdict(combo, candidate('{"label": 3}'))
    msg = feedback_message(v)
    assert msg["role"] == "user"
    assert msg["content"].startswith("Your previous answer was not accepted:\n- schema_invalid (json_schema): ")
    assert "$.label: 3 is not of type 'string'" in msg["content"]
    assert "matches the required schema exactly" in msg["content"]
    assert msg["content"].endswith("Answer again, fixing these problems.")
    low = Verdict(False, "low_confidence", 0.3, "too unsure: confidence 0.30", "confidence")
    ok = Verdict(True, "ok", validator="regex")
    content = feedback_message([ok, low])["content"]
    assert "- low_confidence (confidence): too unsure" in content and "regex" not in content
    assert len(feedback_message([Verdict(False, "x", detail="y" * 5000)], max_chars=200)["content"]) < 300
    with pytest.raises(ValueError, match="no failed verdict"):
        feedback_message([ok])


def test_reask_messages() -> None:
    v = verdict(Confidence(0.5), candidate("x"))
    out = reask_messages(MESSAGES, "x", v)
    assert out[: len(MESSAGES)] == MESSAGES
    assert out[-2] == {"role": "assistant", "content": "x"}
    assert "confidence_unavailable" in out[-1]["content"]


def test_as_awaitable_from_sync_code() -> None:
    # validate() of the async validators returns an awaitable the engine awaits
    rung = Rung(samples=['"a"'])
    got = run(SelfConsistency(2, 1.0, parse="json").validate(rung.candidate('"a"')))
    assert got.passed


def test_run_validator_applies_a_passing_verdicts_text_and_value() -> None:
    rung = Rung(samples=['{"a": 2}', '{"a": 2}'])
    c = rung.candidate('{"a": 1}')
    v = verdict(SelfConsistency(3, 0.6), c)
    assert v.passed and c.text == '{"a": 2}' and c.parsed == {"a": 2}
    c = Rung(samples=['{"a": 2}', '{"a": 3}']).candidate('{"a": 1}')
    assert not verdict(SelfConsistency(3, 0.6), c).passed
    assert c.text == '{"a": 1}' and c.parsed is None  # a failing verdict changes nothing
