"""What a newcomer writes first must work and must not waste money: the top rung keeps the answer it paid for,
a pydantic model given as a check is a schema, a check that is not one and a ladder dearest-first are
refused before any call."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from cascade import Cascade, CascadeExhausted, ConfigError, Ladder, OpenAICompatible, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import Confidence, JsonSchema, Regex, SelfConsistency

MESSAGES = [{"role": "user", "content": "my card was charged twice"}]


class Ticket(BaseModel):
    label: Literal["billing", "refund"]


def unsure(label: str = "billing", p: float = 0.6) -> Reply:
    """A JSON label the model is ``p`` sure of (the rest on the other label)."""
    other = "refund" if label == "billing" else "billing"
    tokens = [('{"label":"', 0.0, {}), (label, math.log(p), {other: math.log(1 - p)}), ('"}', 0.0, {})]
    return Reply(content=f'{{"label":"{label}"}}', logprobs=tokens)


def two_rungs(server: TestServer, **top: object) -> Ladder:
    provider = OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="mini", provider=provider, model="mini", price_in=0.15, price_out=0.6),
            Rung(name="4o", provider=provider, model="4o", price_in=2.5, price_out=10.0, **top),  # type: ignore[arg-type]
        ]
    )


def test_a_cascade_wide_confidence_check_does_not_throw_away_the_top_rungs_answer(server: TestServer) -> None:
    server.default(unsure(p=0.6))
    checks = [JsonSchema(Ticket), Confidence(0.8, label_field="label")]
    with Cascade(two_rungs(server), validators=checks) as cascade:
        result = cascade.run_sync(MESSAGES)
    assert result.accepted and result.answered_by == "4o"
    assert isinstance(result.parsed, Ticket) and result.parsed.label == "billing"
    assert [(a.rung, a.outcome, a.reasons) for a in result.attempts] == [
        ("mini", "escalated", ["low_confidence"]),
        ("4o", "accepted", []),
    ]
    assert [v.validator for v in result.attempts[1].verdicts[0].leaves()] == ["json_schema"]
    top_call = server.requests[-1].body
    assert top_call["model"] == "4o" and "logprobs" not in top_call  # nothing on the top rung reads them


def test_the_top_rung_still_fails_its_hard_checks(server: TestServer) -> None:
    server.script("mini", unsure(p=0.6))
    server.script("4o", Reply(content='{"label": "shipping"}'))
    cascade = Cascade(two_rungs(server), validators=[JsonSchema(Ticket), Confidence(0.8, label_field="label")])
    with cascade, pytest.raises(CascadeExhausted) as info:
        cascade.run_sync(MESSAGES)
    assert info.value.result.attempts[-1].reasons == ["schema_invalid"]
    assert info.value.result.attempts[-1].output == '{"label": "shipping"}'


def test_checks_set_on_the_top_rung_itself_apply_as_written(server: TestServer) -> None:
    server.default(unsure(p=0.6))
    ladder = two_rungs(server, validators=[JsonSchema(Ticket), Confidence(0.8, label_field="label")])
    cascade = Cascade(ladder, validators=[JsonSchema(Ticket), Confidence(0.8, label_field="label")])
    with cascade, pytest.raises(CascadeExhausted) as info:
        cascade.run_sync(MESSAGES)
    assert [a.reasons for a in info.value.result.attempts] == [["low_confidence"], ["low_confidence"]]


def test_self_consistency_samples_are_not_drawn_on_the_top_rung(server: TestServer) -> None:
    server.responder("mini", lambda req: Reply(content=str(req.get("seed"))))  # every sample differs
    server.default(Reply(content="42"), model="4o")
    with Cascade(two_rungs(server), validators=SelfConsistency(samples=3, threshold=0.6)) as cascade:
        result = cascade.run_sync(MESSAGES)
    assert result.answered_by == "4o" and result.output == "42"
    assert [r.model for r in server.requests].count("4o") == 1
    assert [r.model for r in server.requests].count("mini") == 3


def test_a_soft_check_inside_an_alternative_is_kept_on_the_top_rung(server: TestServer) -> None:
    """``a | soft`` on the top rung is left as written: dropping the soft side would make it stricter."""
    server.default(unsure(p=0.9))
    with Cascade(two_rungs(server), validators=Regex("^never$") | Confidence(0.8, label_field="label")) as cascade:
        result = cascade.run_sync(MESSAGES)
    assert result.answered_by == "mini"  # the confidence side of the alternative accepted it


@pytest.mark.parametrize("spec", [Ticket, Ticket.model_json_schema()], ids=["pydantic model", "schema dict"])
def test_a_pydantic_model_or_a_schema_dict_is_a_json_schema_check(
    server: TestServer, spec: type[BaseModel] | dict[str, Any]
) -> None:
    server.script("mini", Reply(content='{"label": "shipping"}'))
    server.script("4o", Reply(content='{"label": "refund"}'))
    with Cascade(two_rungs(server), validators=[spec]) as cascade:
        result = cascade.run_sync(MESSAGES)
    assert [a.reasons for a in result.attempts] == [["schema_invalid"], []]
    expected = Ticket(label="refund") if spec is Ticket else {"label": "refund"}
    assert result.parsed == expected


def test_a_pydantic_model_on_a_rung_is_a_json_schema_check(server: TestServer) -> None:
    server.default(Reply(content='{"label": "refund"}'))
    rung = Rung(
        name="r", provider=OpenAICompatible(server.base_url), model="m", price_in=0, price_out=0, validators=Ticket
    )
    with Cascade([rung]) as cascade:
        assert cascade.run_sync(MESSAGES).parsed == Ticket(label="refund")


class NotACheck:
    pass


@pytest.mark.parametrize("bad", ["json", NotACheck(), NotACheck, 3], ids=["str", "object", "class", "int"])
def test_something_that_is_not_a_check_is_refused_before_any_call(server: TestServer, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^validators\[1\]: expected a check") as info:
        Cascade(two_rungs(server), validators=[JsonSchema(Ticket), bad])  # type: ignore[list-item]
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"validators\[0\]: expected a check"):
        Rung(name="r", provider=OpenAICompatible(server.base_url), model="m", price_in=0, price_out=0, validators=[bad])
    assert server.requests == []


def test_a_ladder_dearest_first_is_refused_naming_both_rungs(server: TestServer) -> None:
    provider = OpenAICompatible(server.base_url)
    big = Rung(name="4o", provider=provider, model="4o", price_in=2.5, price_out=10.0)
    small = Rung(name="mini", provider=provider, model="mini", price_in=0.15, price_out=0.6)
    with pytest.raises(ConfigError, match=r"^rungs: not cheapest first: '4o' .* before the cheaper 'mini-2'") as info:
        Ladder([small, big, small.model_copy(update={"name": "mini-2"})])
    assert "order='as_given'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not cheapest first"):
        Cascade([big, small])


def test_a_deliberate_order_is_walked_as_given(server: TestServer) -> None:
    provider = OpenAICompatible(server.base_url)
    big = Rung(name="4o", provider=provider, model="4o", price_in=2.5, price_out=10.0)
    small = Rung(name="mini", provider=provider, model="mini", price_in=0.15, price_out=0.6)
    server.script("4o", Reply(content="no"))
    server.script("mini", Reply(content="yes"))
    with Cascade(Ladder([big, small], order="as_given"), validators=[Regex("^yes$")]) as cascade:
        assert cascade.run_sync(MESSAGES).answered_by == "mini"
    assert [r.model for r in server.requests] == ["4o", "mini"]


@pytest.mark.parametrize(
    ("first", "second"),
    [((1.0, 1.0), (1.0, 1.0)), ((0.5, 4.0), (1.0, 2.0)), ((0.0, 0.0), (0.0, 0.0))],
    ids=["equal prices", "cheaper in, dearer out", "free rungs"],
)
def test_ladders_that_are_not_clearly_dearest_first_are_accepted(
    server: TestServer, first: tuple[float, float], second: tuple[float, float]
) -> None:
    provider = OpenAICompatible(server.base_url)
    Ladder(
        [
            Rung(name="a", provider=provider, model="a", price_in=first[0], price_out=first[1]),
            Rung(name="b", provider=provider, model="b", price_in=second[0], price_out=second[1]),
        ]
    )


def _raised(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:  # the message is what is compared
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("nothing was raised")


def test_the_troubleshooting_page_quotes_the_errors_as_they_are_raised(server: TestServer, monkeypatch: Any) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md").read_text()
    headings = [h.split("...")[0] for h in re.findall(r"^### `([^`]+)`", page, re.M)]
    provider = OpenAICompatible(server.base_url)
    big = Rung(name="4o", provider=provider, model="4o", price_in=2.5, price_out=10.0)
    small = Rung(name="mini", provider=provider, model="mini", price_in=0.15, price_out=0.6)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.default(Reply(content="no"))
    raised = [
        _raised(lambda: Cascade([small, big], validators=["json"])),  # type: ignore[list-item]
        _raised(lambda: Ladder([big, small])),
        _raised(lambda: OpenAICompatible(server.base_url, api_key_env="OPENAI_API_KEY")),
        _raised(lambda: Cascade([small, big], validators=[Regex("^yes$")]).run_sync(MESSAGES)),
    ]
    for message in raised:
        assert any(message.startswith(h) for h in headings), (message, headings)
