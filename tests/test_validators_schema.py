from __future__ import annotations

import json

import pytest
from _validator_data import candidate, verdict
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from cascade._errors import ConfigError
from cascade.validators import AnswerInvalid, JsonSchema, find_json
from cascade.validators._jsontext import JsonNotFound

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Ada", "age": 36}',
        '  \n{"age": 36, "name": "Ada"}\n',
        '```json\n{"name": "Ada", "age": 36}\n```',
        '```\n{"name": "Ada", "age": 36}\n```',
        'Here is the JSON you asked for:\n{"name": "Ada", "age": 36}\nLet me know if you need more.',
        'Sure. ```JSON\n{"name": "Ada", "age": 36}``` Done.',
    ],
)
def test_accepts_json_as_real_models_write_it(text: str) -> None:
    v = verdict(JsonSchema(PERSON), candidate(text))
    assert v.passed and v.reason == "ok"
    assert v.value == {"name": "Ada", "age": 36}
    assert v.score is None and v.validator == "json_schema"


@pytest.mark.parametrize(
    "text", ["", "I am not sure.", "{'name': 'Ada'}", '{"name": "Ada", "age": ', "```json\n{\n```"]
)
def test_unparseable(text: str) -> None:
    v = verdict(JsonSchema(PERSON), candidate(text))
    assert not v.passed and v.reason == "json_unparseable"
    assert "not JSON" in v.detail


def test_schema_invalid_names_paths_and_is_bounded() -> None:
    v = verdict(JsonSchema(PERSON), candidate('{"name": 7, "age": -1}'))
    assert not v.passed and v.reason == "schema_invalid"
    assert "$.age" in v.detail and "$.name" in v.detail and "not of type 'string'" in v.detail

    many = {"type": "object", "properties": {f"f{i}": {"type": "integer"} for i in range(50)}}
    bad = json.dumps({f"f{i}": "x" * 500 for i in range(50)})
    v = verdict(JsonSchema(many), candidate(bad))
    assert v.reason == "schema_invalid"
    assert "(and 47 more)" in v.detail and len(v.detail) <= 600


def test_pydantic_model_gives_an_instance() -> None:
    v = verdict(JsonSchema(Person), candidate('```json\n{"name": "Ada", "age": 36}\n```'))
    assert v.passed and isinstance(v.value, Person) and v.value.age == 36
    v = verdict(JsonSchema(Person), candidate('{"name": "Ada", "age": -3}'))
    assert v.reason == "schema_invalid" and "$.age" in v.detail and "greater than or equal to 0" in v.detail
    v = verdict(JsonSchema(Person), candidate('{"name": "Ada"}'))
    assert v.reason == "schema_invalid" and "$.age: Field required" in v.detail


def test_bad_schema_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"not a valid Draft 2020-12 schema: 'strng' is not valid.*\$\.type"):
        JsonSchema({"type": "strng"})
    with pytest.raises(ConfigError, match="pydantic model class, got 42"):
        JsonSchema(42)  # type: ignore[arg-type]


def test_response_format_styles() -> None:
    s = JsonSchema(PERSON)
    assert s.response_format("llama_cpp") == {"type": "json_object", "schema": PERSON}
    assert s.response_format("json_object") == {"type": "json_object"}
    assert s.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "json_schema", "schema": PERSON, "strict": True},
    }
    assert JsonSchema(Person).response_format("openai")["json_schema"]["name"] == "Person"
    assert JsonSchema({**PERSON, "title": "a person!"}).response_format()["json_schema"]["name"] == "a_person_"
    with pytest.raises(ConfigError, match=r"style must be .* got 'xml'"):
        s.response_format("xml")  # type: ignore[arg-type]


def test_parse_raises_with_reason() -> None:
    with pytest.raises(AnswerInvalid) as err:
        JsonSchema(PERSON).parse('{"name": "Ada"}')
    assert err.value.reason == "schema_invalid" and "'age' is a required property" in err.value.detail


def test_scan_is_bounded() -> None:
    text = "x" * 30_000 + '{"name": "Ada", "age": 1}'
    assert verdict(JsonSchema(PERSON), candidate(text)).reason == "json_unparseable"
    assert verdict(JsonSchema(PERSON, max_scan=40_000), candidate(text)).passed
    # at most MAX_STARTS brackets are tried
    with pytest.raises(JsonNotFound, match="50 start position"):
        find_json("[" * 200 + '{"a": 1}')


def test_first_balanced_object_wins_and_nested_braces_in_strings() -> None:
    found = find_json('Answer: {"a": "}{", "b": [1, {"c": 2}]} and later {"d": 3}')
    assert found.value == {"a": "}{", "b": [1, {"c": 2}]}
    text = 'see {not json} then {"ok": true}'
    found = find_json(text)
    assert found.value == {"ok": True} and text[found.start : found.end] == '{"ok": true}'


JSON_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
).filter(lambda v: isinstance(v, (dict, list)))
PROSE = st.text(alphabet=st.characters(blacklist_characters="{[`"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_find_json_on_any_text_returns_a_consistent_span_or_says_why(text: str) -> None:
    try:
        found = find_json(text)
    except JsonNotFound as exc:
        assert str(exc)
        return
    # the span, read again, gives the value (NaN, which json reads, is the one value unequal to itself)
    assert json.loads(text[found.start : found.end]) == found.value or found.value != found.value


@settings(max_examples=150, deadline=None)
@given(PROSE, JSON_DOCS, PROSE, st.booleans(), st.booleans())
def test_find_json_recovers_the_json_from_prose_and_fences(
    before: str, value: object, after: str, fenced: bool, indent: bool
) -> None:
    doc = json.dumps(value, indent=2 if indent else None)
    body = f"```json\n{doc}\n```" if fenced else doc
    assert find_json(f"{before}{body}{after}").value == value


def test_schema_of_finds_a_required_schema() -> None:
    from cascade.validators import Confidence, Regex, schema_of

    s = JsonSchema(PERSON)
    assert schema_of(s) is s
    assert schema_of(Confidence(0.5) & s) is s
    assert schema_of((Regex("x") & Confidence(0.5)) & s) is s
    assert schema_of(Regex("x") | s) is None  # only an alternative: JSON is not required
    assert schema_of(Regex("x")) is None and schema_of(None) is None
