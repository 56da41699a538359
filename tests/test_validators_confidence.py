from __future__ import annotations

import itertools
import json
import math

import pytest
from _validator_data import MESSAGES, Rung, candidate, tok, verdict
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade._errors import ConfigError
from cascade._types import TokenLogprob
from cascade.validators import Confidence
from cascade.validators._confidence import (
    aggregate_probs,
    label_probability,
    parse_verbalized,
    value_token_indexes,
)
from cascade.validators._jsontext import value_spans

# {"label": "billing"} as a Qwen-style tokenizer splits it; the label's first token "b" had rivals.
LABEL_STREAM = [
    tok('{"', 0.99),
    tok("label", 0.999),
    tok('":', 0.98),
    tok(' "', 0.97),
    tok("b", 0.6, ("b", 0.6), ("ref", 0.2), ("account", 0.1), ("\n", 0.05)),
    tok("illing", 0.995),
    tok('"}', 0.9),
]

# {"name": "Ada Lovelace", "year": 1815, "ok": true} with a shaky punctuation token
JSON_STREAM = [
    tok("{", 0.99),
    tok('"name', 0.98),
    tok('":', 0.3),  # low, but punctuation: must not count
    tok(' "', 0.95),
    tok("Ada", 0.9),
    tok(" Lov", 0.8),
    tok("elace", 0.99),
    tok('",', 0.97),
    tok(' "', 0.99),
    tok("year", 0.99),
    tok('":', 0.99),
    tok(" ", 0.99),
    tok("181", 0.7),
    tok("5", 0.5),
    tok(",", 0.99),
    tok(' "ok', 0.99),
    tok('":', 0.99),
    tok(" true", 0.95),
    tok("}", 0.2),  # also punctuation
]


def text_of(stream: list[TokenLogprob]) -> str:
    return "".join(t.token for t in stream)


def test_value_tokens_only() -> None:
    idx = value_token_indexes(JSON_STREAM)
    assert [JSON_STREAM[i].token for i in idx or []] == ["Ada", " Lov", "elace", "181", "5", " true"]
    v = verdict(Confidence(0.45), candidate(text_of(JSON_STREAM), JSON_STREAM))
    assert v.passed and v.score == pytest.approx(0.5)
    assert "'5' p=0.50" in v.detail
    v = verdict(Confidence(0.6), candidate(text_of(JSON_STREAM), JSON_STREAM))
    assert not v.passed and v.reason == "low_confidence" and v.score == pytest.approx(0.5)


def test_value_tokens_in_fenced_json_and_plain_text() -> None:
    stream = [
        tok("```", 0.9),
        tok("json", 0.9),
        tok("\n", 0.9),
        tok('{"a":', 0.9),
        tok(" 1", 0.4),
        tok("}\n", 0.9),
        tok("```", 0.1),
    ]
    assert value_token_indexes(stream) == [4]
    plain = [tok("Paris", 0.9), tok(".", 0.3)]
    assert value_token_indexes(plain) is None
    v = verdict(Confidence(0.5), candidate("Paris.", plain))
    assert not v.passed and v.score == pytest.approx(0.3) and "over 2 tokens" in v.detail


def test_label_field_normalised_over_label_alternatives() -> None:
    c = candidate('{"label": "billing"}', LABEL_STREAM)
    # without labels: every alternative counts (the chosen "b" is already among them)
    v = verdict(Confidence(0.5, label_field="label"), c)
    assert v.score == pytest.approx(0.6 / (0.6 + 0.2 + 0.1 + 0.05))
    # with labels: "\n" cannot begin a label, so it is left out
    v = verdict(Confidence(0.5, label_field="label", labels=["billing", "refund", "account"]), c)
    assert v.passed and v.score == pytest.approx(0.6 / 0.9)
    assert "label 'billing'" in v.detail
    v = verdict(Confidence(0.7, label_field="label", labels=["billing", "refund", "account"]), c)
    assert not v.passed and v.reason == "low_confidence"


def test_label_token_with_a_quote_prefix() -> None:
    # the label's first token carries the opening quote: alternatives must carry it too
    stream = [
        tok('{"label":', 0.99),
        tok(' "ref', 0.5, (' "ref', 0.5), (' "bill', 0.3), (" ", 0.2)),
        tok('und"}', 0.99),
    ]
    got = label_probability(stream, len('{"label": "'), ["refund", "billing"])
    assert got is not None and got[0] == pytest.approx(0.5 / 0.8) and got[1] == 1


def test_plain_label_answer() -> None:
    stream = [tok(" ", 0.99), tok("Pos", 0.7, ("Pos", 0.7), ("Neg", 0.25), ("I", 0.05)), tok("itive", 0.99)]
    v = verdict(Confidence(0.5, labels=["Positive", "Negative"]), candidate(" Positive", stream))
    assert v.score == pytest.approx(0.7 / 0.95)


def test_missing_label_field_is_unavailable() -> None:
    v = verdict(Confidence(0.5, label_field="category"), candidate('{"label": "billing"}', LABEL_STREAM))
    assert not v.passed and v.reason == "confidence_unavailable" and "'category'" in v.detail


def test_recorded_confidence() -> None:
    v = verdict(Confidence(0.8), candidate("x", None, confidence=0.9))
    assert v.passed and v.score == 0.9 and "recorded" in v.detail
    v = verdict(Confidence(0.95), candidate("x", None, confidence=0.9))
    assert v.reason == "low_confidence"


def test_unavailable_policies() -> None:
    v = verdict(Confidence(0.5), candidate("x"))
    assert not v.passed and v.reason == "confidence_unavailable" and "logprobs=True" in v.detail
    v = verdict(Confidence(0.5, on_unavailable="pass"), candidate("x"))
    assert v.passed and v.reason == "confidence_unavailable" and v.score is None


def test_verbalize_asks_the_rung_once() -> None:
    rung = Rung(replies=["85"])
    v = verdict(Confidence(0.8, on_unavailable="verbalize"), rung.candidate("Paris"))
    assert v.passed and v.score == 0.85 and "verbalised" in v.detail
    [(messages, params)] = rung.asked
    assert messages[: len(MESSAGES)] == MESSAGES
    assert messages[-2] == {"role": "assistant", "content": "Paris"}
    assert "0 (surely wrong) to 100" in messages[-1]["content"]
    assert params["response_format"] is None and params["max_tokens"] == 8
    rung = Rung(replies=["I'd say 40%."])
    v = verdict(Confidence(0.8, on_unavailable="verbalize"), rung.candidate("Paris"))
    assert v.reason == "low_confidence" and v.score == 0.4
    rung = Rung(replies=["very confident"])
    v = verdict(Confidence(0.8, on_unavailable="verbalize"), rung.candidate("Paris"))
    assert v.reason == "confidence_unavailable" and "'very confident'" in v.detail
    c = candidate("Paris")
    c.asker = None
    v = verdict(Confidence(0.8, on_unavailable="verbalize"), c)
    assert v.reason == "confidence_unavailable" and "no asker" in v.detail


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("85", 0.85),
        ("100", 1.0),
        ("0", 0.0),
        ("0.7", 0.7),
        ("1", 0.01),
        ("90%", 0.9),
        ("Confidence: 72.5", 0.725),
        ("250", None),
        ("high", None),
        ('{"confidence": 60}', 0.6),
    ],
)
def test_parse_verbalized(reply: str, value: float | None) -> None:
    got = parse_verbalized(reply)
    assert got == pytest.approx(value) if value is not None else got is None


def test_aggregates() -> None:
    probs = [0.9, 0.5, 0.8, 0.1, 1.0]
    assert aggregate_probs(probs, "min") == 0.1
    assert aggregate_probs(probs, "mean") == pytest.approx(math.prod(probs) ** (1 / 5))
    assert aggregate_probs(probs, "quantile", 0.0) == 0.1
    assert aggregate_probs(probs, "quantile", 1.0) == 1.0
    assert aggregate_probs(probs, "quantile", 0.5) == 0.8
    assert aggregate_probs(probs, "quantile", 0.1) == pytest.approx(0.1 + 0.4 * 0.4)
    v = verdict(Confidence(0.6, aggregate="mean"), candidate(text_of(JSON_STREAM), JSON_STREAM))
    assert v.score == pytest.approx((0.9 * 0.8 * 0.99 * 0.7 * 0.5 * 0.95) ** (1 / 6))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.2}, r"threshold must be a probability in \[0, 1\], got 1.2"),
        ({"threshold": 0.5, "aggregate": "max"}, "aggregate must be .* got 'max'"),
        ({"threshold": 0.5, "quantile": -0.1}, "quantile must be in"),
        ({"threshold": 0.5, "on_unavailable": "ignore"}, "on_unavailable must be .* got 'ignore'"),
        ({"threshold": 0.5, "labels": "billing"}, "labels must be a non-empty list"),
        ({"threshold": 0.5, "label_field": ""}, "label_field must be"),
    ],
)
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Confidence(**kwargs)  # type: ignore[arg-type]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text('ab "\\é}{', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text('kq":', max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES.filter(lambda v: isinstance(v, (dict, list))), st.booleans(), st.data())
def test_value_tokens_cover_values_under_any_tokenisation(value: object, indent: bool, data: st.DataObject) -> None:
    text = json.dumps(value, indent=2 if indent else None, ensure_ascii=False)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=len(text)))))
    bounds = [0, *[c for c in cuts if 0 < c < len(text)], len(text)]
    tokens = [TokenLogprob(text[a:b], -0.1) for a, b in itertools.pairwise(bounds)]
    chosen = value_token_indexes(tokens)
    assert chosen is not None
    spans = [(s.start, s.end) for s in value_spans(text)]
    value_chars = {i for s, e in spans for i in range(s, e)}
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        overlaps = any(c in value_chars for c in range(a, b))
        if value_chars:
            assert (i in chosen) == overlaps
    # the spans, read back, are exactly the scalar leaves of the value, in document order (keys excluded)
    pieces = [
        json.loads('"' + text[s.start : s.end] + '"') if text[s.start - 1] == '"' else json.loads(text[s.start : s.end])
        for s in value_spans(text)
    ]
    assert pieces == leaves(value)


def leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


@pytest.mark.parametrize("top", [(), (("billing", math.log(0.6)),)])
def test_label_without_alternatives_is_its_raw_probability(top: tuple[tuple[str, float], ...]) -> None:
    # a provider sending top_logprobs=0 or 1 returns no alternative: p=0.6 must not pass 0.95 as 1.0
    stream = [TokenLogprob("billing", math.log(0.6), top)]
    v = verdict(Confidence(0.95, labels=["billing", "refund"]), candidate("billing", stream))
    assert not v.passed and v.reason == "low_confidence" and v.score == pytest.approx(0.6)
