"""Hostile input never gets past the documented errors: provider response parsers, the HTTP error
classifier, Retry-After, and reading (and resuming from) a JSONL log are fuzzed with hypothesis."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cascade import Completion, ProviderError
from cascade._logs._read import read_log
from cascade._logs._resume import LogWarning, Resume
from cascade._providers._anthropic import parse_message
from cascade._providers._http import HttpProvider, decode_json_object, parse_retry_after
from cascade._providers._openai import parse_chat_completion
from cascade.stats import BadLine as StatsBadLine
from cascade.stats import read_events as stats_read_events

KEYS = [
    "choices", "message", "content", "text", "usage", "prompt_tokens", "completion_tokens", "finish_reason",
    "logprobs", "top_logprobs", "token", "logprob", "model", "type", "stop_reason", "input_tokens",
    "output_tokens", "error", "code", "event", "request_id", "outcome", "attempt", "reasons", "verdicts",
    "metadata", "output", "cost_usd", "tokens_in", "passed", "score", "rung", "error",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**310)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["stop", "length", "end_turn", "max_tokens", "text", "request", "attempt", "accepted"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=8)
fuzz = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def well_formed_openai(content: Any, usage: Any, logprobs: Any) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": content}, "finish_reason": "stop", "logprobs": logprobs}],
        "usage": usage,
    }


def check_completion(c: Completion) -> None:
    assert isinstance(c.text, str)
    assert isinstance(c.tokens_in, int) and isinstance(c.tokens_out, int)
    assert c.tokens_in >= -1 and c.tokens_out >= -1
    if c.tokens_in >= 0:
        assert float(c.tokens_in) < math.inf and float(c.tokens_out) < math.inf  # usable in cost arithmetic


@fuzz
@given(json_objects)
@example({"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"token": "a", "logprob": 0,
                                                                             "top_logprobs": 5}]}}]})  # fmt: skip
@example({"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"token": "a", "logprob": 10**400}]}}]})
@example({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 10**400, "completion_tokens": 1}})
def test_openai_parser_returns_a_completion_or_bad_response(data: dict[str, Any]) -> None:
    try:
        completion = parse_chat_completion(data)
    except ProviderError as exc:
        assert (exc.kind, exc.reason) == ("rung_fatal", "bad_response")
    else:
        check_completion(completion)


@fuzz
@given(json_values, json_values, json_values)
def test_openai_parser_with_a_plausible_shape(content: Any, usage: Any, logprobs: Any) -> None:
    try:
        completion = parse_chat_completion(well_formed_openai(content, usage, logprobs))
    except ProviderError as exc:
        assert exc.reason == "bad_response"
    else:
        check_completion(completion)


@fuzz
@given(json_objects | st.builds(lambda c, u: {"content": c, "usage": u}, json_values, json_values))
@example({"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 10**400, "output_tokens": 2}})
def test_anthropic_parser_returns_a_completion_or_bad_response(data: dict[str, Any]) -> None:
    try:
        completion = parse_message(data)
    except ProviderError as exc:
        assert (exc.kind, exc.reason) == ("rung_fatal", "bad_response")
    else:
        check_completion(completion)


bodies = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


@fuzz
@given(st.integers(min_value=300, max_value=599), bodies, st.text(max_size=40))
@example(502, b"[" * 100_000 + b"]" * 100_000, "")
@example(429, b"{}", "Wed, 21 Oct 2015 07:28:00 GMT")
@example(503, b'{"error": {"message": 3, "code": []}}', "1e999")
def test_error_classifier_always_classifies(status: int, raw: bytes, retry_after: str) -> None:
    provider = HttpProvider("http://127.0.0.1:9/v1")
    headers = httpx.Headers([(b"retry-after", retry_after.encode("utf-8", "replace"))])  # as read off the wire
    err = provider._classify(status, raw, headers)
    assert isinstance(err, ProviderError) and err.kind in ("transient", "rung_fatal", "caller")
    assert err.reason and len(err.message) <= 500 and err.status == status
    assert err.retry_after is None or err.retry_after >= 0


@fuzz
@given(bodies)
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000)
@example(b"\xff\xfe{}")
def test_body_decoder_gives_an_object_or_bad_response(raw: bytes) -> None:
    try:
        data = decode_json_object(raw)
    except ProviderError as exc:
        assert exc.reason == "bad_response"
    else:
        assert isinstance(data, dict)


@fuzz
@given(st.text(max_size=60) | st.sampled_from(["nan", "inf", "-5", "1e999", "Mon, 32 Foo 2020", "0x10"]))
def test_retry_after_is_none_or_a_non_negative_number(value: str) -> None:
    out = parse_retry_after(value)
    assert out is None or (isinstance(out, float) and out >= 0 and not math.isnan(out))


lines = st.one_of(
    json_objects.map(json.dumps),
    st.builds(
        lambda kind, fields: json.dumps({"event": kind, "request_id": "r1", **fields}),
        st.sampled_from(["attempt", "request", "resume", "breaker", "other"]),
        json_objects,
    ),
    st.text(max_size=40),
).map(lambda s: s.encode("utf-8", "surrogatepass"))
log_bytes = st.lists(lines | st.binary(max_size=40), max_size=12).map(lambda ls: b"\n".join(ls)) | st.binary(
    max_size=400
)


@fuzz
@given(log_bytes)
@example(b'{"event":"request","request_id":"r1","outcome":"accepted"}\n{"event":"req')
@example(b'{"event":"attempt","request_id":"r1","reasons":5,"verdicts":7,"attempt":"x"}\n'
         b'{"event":"request","request_id":"r1","outcome":"accepted","metadata":[]}\n')  # fmt: skip
def test_log_reader_and_resume_never_raise(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("log")) / "x.jsonl"
    path.write_bytes(data)
    read = read_log(path)
    assert all(isinstance(e, dict) and isinstance(e["event"], str) for e in read.events)
    if data.startswith(b"\x1f\x8b"):  # gzip magic: read as gzip, a corrupt stream is one reported error
        assert read.events or any("gzip" in b.error for b in read.bad_lines)
    else:
        nonblank = sum(1 for line in data.split(b"\n") if line.strip())
        assert len(read.events) + len(read.bad_lines) == nonblank  # every line is either read or reported
    last = len(data.split(b"\n"))
    assert all(b.line == last and not data.endswith(b"\n") for b in read.bad_lines if b.torn)
    with pytest.warns(LogWarning) if read.bad_lines else contextlib.nullcontext():
        resume = Resume.load(path)
    for result in resume.done.values():
        assert result.resumed and result.outcome in ("accepted", "exhausted", "error")
        json.dumps(result.to_dict(), default=str)


@fuzz
@given(log_bytes)
@example(b"[" * 100_000 + b"]" * 100_000 + b"\n")
@example(b'{"event":"request","request_id":"r","outcome":"accepted","ts":1e999}\n')
def test_stats_reader_never_raises(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("log")) / "x.jsonl"
    path.write_bytes(data)
    bad: list[StatsBadLine] = []
    events = list(stats_read_events([str(path)], bad.append))
    assert all(e["event"] in ("attempt", "request") for e in events)
    nonblank = sum(1 for line in data.split(b"\n") if line.strip())
    assert len(events) + len(bad) <= nonblank
