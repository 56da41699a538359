"""Validators through the engine and the suite's real HTTP test server: each reason code reaches the
result (``attempts[i].reasons`` / ``verdicts``) and the JSONL escalation log."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

pytest.importorskip("cascade.testing", reason="the test server (cascade.testing) is not on this branch yet")

from cascade import Cascade, CascadeExhausted, Ladder, OpenAICompatible, RequestParams, RetryPolicy, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import Choice, Confidence, JsonSchema, Regex, SelfConsistency

MSG = [{"role": "user", "content": "Classify the ticket: 'my card was charged twice'"}]
FAST = RetryPolicy(attempts=1)
LABELS = ["billing", "technical", "account", "shipping", "refund"]


class Ticket(BaseModel):
    label: Literal["billing", "technical", "account", "shipping", "refund"]


def make(server: TestServer, checks: Any, params: RequestParams | None = None, **kw: Any) -> Cascade:
    p = OpenAICompatible(server.base_url)
    rp = params or RequestParams()
    rungs = [
        Rung(
            name="small",
            provider=p,
            model="small-m",
            price_in=0.1,
            price_out=0.2,
            params=rp,
            retry=FAST,
            validators=checks,
        ),
        Rung(
            name="large",
            provider=p,
            model="large-m",
            price_in=2.0,
            price_out=8.0,
            params=rp,
            retry=FAST,
            validators=checks,
        ),
    ]
    return Cascade(Ladder(rungs), **kw)


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def logprobs(
    text_tokens: list[tuple[str, float]], alts: dict[int, dict[str, float]] | None = None
) -> list[tuple[str, float, dict[str, float]]]:
    alts = alts or {}
    return [
        (t, math.log(p), {a: math.log(q) for a, q in alts.get(i, {}).items()}) for i, (t, p) in enumerate(text_tokens)
    ]


@pytest.mark.parametrize(
    ("small_answer", "reason", "fragment"),
    [
        ("I think it is about billing.", "json_unparseable", "not JSON"),
        ('```json\n{"label": "bill"}\n```', "schema_invalid", "$.label"),
    ],
)
def test_json_schema_reasons_reach_result_and_log(
    server: TestServer, tmp_path: Path, small_answer: str, reason: str, fragment: str
) -> None:
    schema = JsonSchema(Ticket)
    server.script("small-m", Reply(content=small_answer))
    server.script("large-m", Reply(content='Sure: {"label": "billing"}'))
    log = tmp_path / "esc.jsonl"
    params = RequestParams(response_format=schema.response_format("llama_cpp"))
    with make(server, schema, params, log=log) as cascade:
        result = cascade.run_sync(MSG)
    assert result.answered_by == "large" and isinstance(result.parsed, Ticket) and result.parsed.label == "billing"
    assert result.attempts[0].reasons == [reason]
    [v] = result.attempts[0].verdicts
    assert v.validator == "json_schema" and fragment in v.detail
    first = events(log)[0]
    assert first["reasons"] == [reason] and first["verdicts"][0]["reason"] == reason
    assert fragment in first["verdicts"][0]["detail"]
    # the rung sent the llama.cpp JSON-mode form
    sent = server.requests[0].body["response_format"]
    assert sent["type"] == "json_object" and sent["schema"]["properties"]["label"]["enum"] == LABELS


def test_self_consistency_samples_per_seed(server: TestServer, tmp_path: Path) -> None:
    # the small model wavers between seeds; the large one is stable
    small = {None: "billing", 1: "refund", 2: "billing", 3: "account", 4: "technical"}

    def small_by_seed(body: dict[str, Any]) -> Reply:
        return Reply(content=json.dumps({"label": small[body.get("seed")]}))

    def large_by_seed(body: dict[str, Any]) -> Reply:
        label = "refund" if body.get("seed") in (None, 3) else "billing"  # its first answer is the outlier
        return Reply(content=json.dumps({"label": label}))

    server.responder("small-m", small_by_seed)
    server.responder("large-m", large_by_seed)
    log = tmp_path / "esc.jsonl"
    checks = JsonSchema(Ticket) & SelfConsistency(samples=5, threshold=0.6, key="label")
    with make(server, checks, log=log) as cascade:
        result = cascade.run_sync(MSG)
    a0, a1 = result.attempts
    assert a0.reasons == ["low_agreement"] and a0.calls == 5
    sc = a0.verdicts[-1]
    assert sc.validator == "self_consistency" and sc.score == pytest.approx(0.4)
    assert a1.outcome == "accepted" and a1.calls == 5
    # the large rung's majority (3 of 5 "billing") replaced its own first answer
    assert result.output == '{"label": "billing"}' and result.parsed is not None and result.parsed.label == "billing"
    seeds = sorted((r.body.get("seed") or 0) for r in server.requests if r.model == "small-m")
    assert seeds == [0, 1, 2, 3, 4]
    assert all(r.body.get("temperature", 0) > 0 for r in server.requests if r.body.get("seed"))
    ev = events(log)
    assert ev[0]["reasons"] == ["low_agreement"] and ev[0]["calls"] == 5
    assert ev[0]["verdicts"][-1]["score"] == pytest.approx(0.4)
    assert ev[1]["verdicts"][-1]["score"] == pytest.approx(0.6)


def test_confidence_from_logprobs_escalates_unsure_label(server: TestServer, tmp_path: Path) -> None:
    unsure = logprobs(
        [('{"', 0.99), ("label", 0.99), ('":', 0.99), (' "', 0.99), ("b", 0.45), ("illing", 0.99), ('"}', 0.99)],
        {4: {"b": 0.45, "ref": 0.4, "account": 0.1}},
    )
    sure = logprobs(
        [('{"', 0.99), ("label", 0.99), ('":', 0.99), (' "', 0.99), ("ref", 0.9), ("und", 0.99), ('"}', 0.99)],
        {4: {"ref": 0.9, "b": 0.05}},
    )
    server.script("small-m", Reply(content='{"label": "billing"}', logprobs=unsure))
    server.script("large-m", Reply(content='{"label": "refund"}', logprobs=sure))
    log = tmp_path / "esc.jsonl"
    checks = JsonSchema(Ticket) & Confidence(0.6, label_field="label", labels=LABELS)
    with make(server, checks, RequestParams(logprobs=True, top_logprobs=5), log=log) as cascade:
        result = cascade.run_sync(MSG)
    assert result.answered_by == "large" and result.parsed is not None and result.parsed.label == "refund"
    assert result.attempts[0].reasons == ["low_confidence"]
    conf0 = result.attempts[0].verdicts[-1]
    assert conf0.score == pytest.approx(0.45 / 0.95)
    assert result.attempts[1].verdicts[-1].score == pytest.approx(0.9 / 0.95)
    ev = events(log)
    assert ev[0]["reasons"] == ["low_confidence"] and ev[0]["verdicts"][-1]["score"] == pytest.approx(0.45 / 0.95)


def test_confidence_unavailable_and_verbalised(server: TestServer, tmp_path: Path) -> None:
    # rungs that turn logprobs off (the engine would otherwise ask for them): the server sends none
    server.script("small-m", Reply(content='{"label": "billing"}'))
    server.script("large-m", Reply(content='{"label": "billing"}'))
    no_logprobs = RequestParams(logprobs=False)
    with make(server, Confidence(0.5), no_logprobs, on_exhausted="best_effort") as cascade:
        result = cascade.run_sync(MSG)
    assert [a.reasons for a in result.attempts] == [["confidence_unavailable"]] * 2 and not result.accepted

    server.reset()

    def asks(model: str, sure: str) -> Any:
        def respond(body: dict[str, Any]) -> Reply:
            if "How confident are you" in body["messages"][-1]["content"]:
                return Reply(content=sure)
            return Reply(content='{"label": "billing"}')

        return respond

    server.responder("small-m", asks("small", "30"))
    server.responder("large-m", asks("large", "95%"))
    log = tmp_path / "verbal.jsonl"
    schema = JsonSchema(Ticket)
    params = RequestParams(response_format=schema.response_format("llama_cpp"), logprobs=False)
    with make(server, schema & Confidence(0.5, on_unavailable="verbalize"), params, log=log) as cascade:
        result = cascade.run_sync(MSG)
    assert result.answered_by == "large" and result.output == '{"label": "billing"}'
    assert result.attempts[0].reasons == ["low_confidence"] and result.attempts[0].calls == 2
    assert result.attempts[0].verdicts[-1].score == pytest.approx(0.3)
    assert result.attempts[1].verdicts[-1].score == pytest.approx(0.95)
    ask = next(r for r in server.requests if "How confident" in json.dumps(r.body))
    assert ask.body["messages"][-2] == {"role": "assistant", "content": '{"label": "billing"}'}
    assert not ask.body.get("response_format")  # the JSON schema would force the number into the label
    assert events(log)[0]["calls"] == 2


def test_choice_and_regex_reasons(server: TestServer, tmp_path: Path) -> None:
    server.script("small-m", Reply(content="Shipping"), Reply(content="ticket 12"))
    server.script("large-m", Reply(content="billing"), Reply(content="TICKET-0012"))
    log = tmp_path / "esc.jsonl"
    with make(server, Choice(LABELS), log=log) as cascade:
        result = cascade.run_sync(MSG)
    assert result.attempts[0].reasons == ["label_not_allowed"] and result.output == "billing"
    with make(server, Regex(r"TICKET-\d{4}", mode="fullmatch"), log=log) as cascade:
        result = cascade.run_sync(MSG)
    assert result.attempts[0].reasons == ["regex_mismatch"] and result.output == "TICKET-0012"
    reasons = [e["reasons"] for e in events(log) if e["event"] == "attempt"]
    assert reasons == [["label_not_allowed"], [], ["regex_mismatch"], []]


def test_reask_feeds_the_schema_detail_back(server: TestServer) -> None:
    server.script("small-m", Reply(content='{"label": "bill"}'), Reply(content='{"label": "billing"}'))
    p = OpenAICompatible(server.base_url)
    rung = Rung(
        name="small",
        provider=p,
        model="small-m",
        price_in=0.1,
        price_out=0.2,
        retry=FAST,
        validators=JsonSchema(Ticket),
        reasks=1,
    )
    with Cascade(Ladder([rung])) as cascade:
        result = cascade.run_sync(MSG)
    assert [a.outcome for a in result.attempts] == ["reask", "accepted"]
    assert result.attempts[0].reasons == ["schema_invalid"]
    fed_back = server.requests[1].body["messages"][-1]["content"]
    assert "$.label" in fed_back and "billing" in fed_back


def test_exhausted_lists_the_reasons(server: TestServer) -> None:
    server.default(Reply(content="no idea"))
    with make(server, JsonSchema(Ticket)) as cascade, pytest.raises(CascadeExhausted, match="json_unparseable"):
        cascade.run_sync(MSG)


def test_a_lone_self_consistency_check_outputs_the_majority(server: TestServer) -> None:
    answers = {None: "Lyon", 1: "Paris", 2: "paris ", 3: "Marseille"}
    server.responder("small-m", lambda body: Reply(content=answers[body.get("seed")]))
    p = OpenAICompatible(server.base_url)
    rung = Rung(
        name="small",
        provider=p,
        model="small-m",
        price_in=0.1,
        price_out=0.2,
        retry=FAST,
        validators=SelfConsistency(samples=4, threshold=0.5),
    )
    with Cascade(Ladder([rung])) as cascade:
        result = cascade.run_sync(MSG)
    assert result.accepted and result.output == "Paris" and result.attempts[0].calls == 4
    assert result.attempts[0].output == "Paris"


def test_samples_that_do_not_fit_the_budget_are_not_sent(server: TestServer) -> None:
    server.default(Reply(content='{"label": "billing"}', tokens_in=100, tokens_out=5))
    p = OpenAICompatible(server.base_url)
    rung = Rung(
        name="small",
        provider=p,
        model="small-m",
        price_in=0.1,
        price_out=0.2,
        retry=FAST,
        params=RequestParams(max_tokens=10),
        validators=SelfConsistency(samples=5, threshold=0.6),
    )
    # one call's worst case: (100 * 0.1 + 10 * 0.2) / 1e6 = 12e-6; four more samples need 48e-6
    with Cascade(Ladder([rung]), budget_usd=30e-6, token_counter=lambda _m: 100, on_exhausted="best_effort") as c:
        result = c.run_sync(MSG)
    assert not result.accepted and result.attempts[0].reasons == ["budget_exhausted"]
    assert len(server.requests) == 1
    assert result.cost_usd == pytest.approx((100 * 0.1 + 5 * 0.2) / 1e6)
