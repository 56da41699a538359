"""Answers written to stall the checks: the JSON extraction reads a bounded multiple of the answer
(never once per start position), nesting past the parser's limit is "not found" (not a crash), and user
regexes run without catastrophic backtracking (RE2) or are refused up front."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cascade import Completion, ConfigError
from cascade.validators import JsonSchema, Regex, _jsontext, _patterns
from cascade.validators._jsontext import JsonNotFound, find_json


class CountingDecoder:
    """Counts the characters ``raw_decode`` reads (to the end of a value, or to where it failed)."""

    def __init__(self) -> None:
        self.read = 0
        self.inner = json.JSONDecoder()

    def raw_decode(self, s: str, idx: int = 0) -> tuple[Any, int]:
        try:
            value, end = self.inner.raw_decode(s, idx)
        except json.JSONDecodeError as exc:
            self.read += exc.pos - idx + 1
            raise
        self.read += end - idx
        return value, end


@pytest.mark.parametrize(
    "answer",
    ["[" * 40 + "1," * 200_000, "{" * 30 + '"a": ' * 100_000, "[[1, " * 50 + "x" * 400_000],
    ids=["unclosed-lists", "unclosed-objects", "prose-after-brackets"],
)
def test_json_extraction_reads_a_bounded_multiple_of_the_answer(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    """Each of 50 start positions was read to the end: 50x a 3.8 MB answer took 7.7 s in the review."""
    counter = CountingDecoder()
    monkeypatch.setattr(_jsontext, "_DECODER", counter)
    with pytest.raises(JsonNotFound):
        find_json(answer)
    assert counter.read <= (_jsontext.MAX_WORK_FACTOR + 1) * len(answer) + _jsontext.MAX_SCAN  # base: ~50x


def test_json_still_found_after_brackets_in_prose() -> None:
    found = find_json('Notes [a] and {b} then the answer: {"ok": true} done')
    assert found.value == {"ok": True}


@pytest.mark.parametrize("answer", ["[" * 100_000, "[" * 50 + "[1," * 100_000, '{"a":' * 50_000])
def test_nesting_past_the_parsers_limit_is_not_found_not_a_crash(answer: str) -> None:
    """RecursionError escaped find_json: in a batch that killed the worker and dropped items."""
    with pytest.raises(JsonNotFound):
        find_json(answer)
    verdict = JsonSchema({"type": "object"}).parse  # the check itself reports json_unparseable
    with pytest.raises(ValueError, match="not JSON"):
        verdict(answer)


EVIL = "^(a+)+$"
EVIL_INPUT = "a" * 40 + "!"  # 2^40 paths on re: hours


def test_a_schema_pattern_runs_on_re2_in_linear_time() -> None:
    pytest.importorskip("re2", reason="google-re2 is the re2 extra (a dev dependency)")
    schema = JsonSchema({"type": "object", "properties": {"id": {"type": "string", "pattern": EVIL}}})
    with pytest.raises(ValueError, match="does not match"):
        schema.parse(json.dumps({"id": EVIL_INPUT}))
    assert schema.parse(json.dumps({"id": "aaaa"})) == {"id": "aaaa"}


def test_pattern_properties_and_additional_properties_run_on_re2() -> None:
    pytest.importorskip("re2", reason="google-re2 is the re2 extra (a dev dependency)")
    schema = JsonSchema(
        {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
    )
    assert schema.parse('{"aaa": 1}') == {"aaa": 1}
    with pytest.raises(ValueError, match="Additional properties"):
        schema.parse(json.dumps({EVIL_INPUT: 1}))


def test_a_regex_check_runs_on_re2() -> None:
    pytest.importorskip("re2", reason="google-re2 is the re2 extra (a dev dependency)")
    check = Regex(EVIL, mode="fullmatch")
    from cascade.validators._base import Candidate

    assert not check.validate(
        Candidate(text=EVIL_INPUT, completion=Completion(EVIL_INPUT, 0, 0), messages=[], rung="r", model="m")
    ).passed


def test_without_re2_an_exponential_pattern_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_patterns, "_re2", lambda: None)
    _patterns._compiled.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"pattern '\^\(a\+\)\+\$' can backtrack exponentially.*re2"):
            JsonSchema({"type": "string", "pattern": EVIL})
        with pytest.raises(ConfigError, match="Regex: pattern"):
            Regex("(x|xx)*y")
        JsonSchema({"type": "string", "pattern": "^[a-z]{3}-[0-9]+$"})  # an ordinary pattern is fine on re
    finally:
        _patterns._compiled.cache_clear()


def test_an_exponential_pattern_with_flags_is_refused() -> None:
    import re

    with pytest.raises(ConfigError, match="with flags it runs on Python's re"):
        Regex(EVIL, flags=re.IGNORECASE)
    Regex("^[a-z]+$", flags=re.IGNORECASE)


def test_a_pattern_re2_cannot_take_and_that_can_backtrack_is_refused() -> None:
    pytest.importorskip("re2", reason="google-re2 is the re2 extra (a dev dependency)")
    with pytest.raises(ConfigError, match="RE2 cannot compile it"):
        JsonSchema({"type": "string", "pattern": r"(?=a)(a+)+$"})
    JsonSchema({"type": "string", "pattern": r"^(?!x)[a-z]+$"})  # lookahead without nested repeats: fine on re
