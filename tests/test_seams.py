"""The seams later features build on: rung gates, the request's trajectory, FunctionProvider."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from cascade import (
    BaseGate,
    Candidate,
    Cascade,
    Completion,
    CompletionRequest,
    ConfigError,
    FunctionProvider,
    GateContext,
    Gates,
    MemorySink,
    Rung,
    Skip,
    Verdict,
)
from cascade.validators import SelfConsistency, check

MSG = [{"role": "user", "content": "hi"}]


def answers(**by_model: str) -> FunctionProvider:
    """A provider answering each model with its fixed text, with usage reported."""
    return FunctionProvider(lambda r: Completion(by_model[r.model], tokens_in=3, tokens_out=2, model=r.model))


def rungs(provider: FunctionProvider, *names: str, **kw: Any) -> list[Rung]:
    return [Rung(name=n, provider=provider, model=n, price_in=1, price_out=1, **kw) for n in names]


never = check(lambda c: False, name="never")


class Recorder(BaseGate):
    """Skips the rungs it is told to, and records every hook it sees."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip
        self.seen: list[tuple[str, str, Any]] = []

    def allow(self, ctx: GateContext) -> Skip | None:
        self.seen.append(("allow", ctx.rung.name, ctx.is_top))
        return Skip("deadline", "no time left", kind="deadline") if ctx.rung.name in self.skip else None

    def on_call(self, ctx: GateContext, error: Any, latency_s: float) -> None:
        self.seen.append(("call", ctx.rung.name, error))

    def on_visit(self, ctx: GateContext, accepted: bool) -> None:
        self.seen.append(("visit", ctx.rung.name, accepted))

    def on_finish(self, ctx: GateContext, result: Any) -> None:
        self.seen.append(("finish", ctx.rung.name, result.answered_by))


def test_a_gate_skips_a_rung_without_a_call_and_sees_every_hook() -> None:
    calls: list[str] = []

    def model(r: CompletionRequest) -> Completion:
        calls.append(r.model)
        return Completion('{"a": 1}', 1, 1)

    gate = Recorder(skip={"small"})
    sink = MemorySink()
    c = Cascade(
        [*rungs(FunctionProvider(model), "small", "mid", validators=never), *rungs(FunctionProvider(model), "top")],
        gates=[gate],
        log=sink,
    )
    out = c.run_sync(MSG)
    assert out.answered_by == "top" and calls == ["mid", "top"]  # small was never called
    skipped = out.attempts[0]
    assert skipped.outcome == "skipped" and skipped.reasons == ["deadline"] and skipped.cost_usd == 0
    assert skipped.error == {"kind": "deadline", "reason": "deadline", "status": None, "message": "no time left"}
    assert gate.seen == [
        ("allow", "small", False),
        ("allow", "mid", False),
        ("call", "mid", None),
        ("visit", "mid", False),
        ("allow", "top", True),
        ("call", "top", None),
        ("visit", "top", True),
        ("finish", "top", "top"),
    ]
    logged = [e["reasons"] for e in sink.of("attempt")]
    assert logged[-3:] == [["deadline"], ["custom:never"], []]


def test_gates_compose_and_refuse_what_is_not_a_gate() -> None:
    a, b = Recorder(skip=set()), Recorder(skip={"x"})
    both = a & b
    assert isinstance(both, Gates) and both.gates == (a, b)
    assert (both & Recorder(set())).gates[:2] == (a, b)
    with pytest.raises(ConfigError, match=r"gates\[0\]: expected an object with allow"):
        Gates([object()])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="gates: expected a list"):
        Cascade(rungs(answers(a="x"), "a"), gates="nope")  # type: ignore[arg-type]


def test_a_later_rungs_check_sees_the_earlier_rungs_answers() -> None:
    seen: list[tuple[Any, ...]] = []

    @check(name="agrees")
    def agrees(c: Candidate) -> bool:
        seen.append((*((s.rung, s.text, s.accepted, s.confidence) for s in c.history), c.rung_index, c.is_top))
        return any(s.text == c.text for s in c.history)

    low = Verdict(False, "low_confidence", score=0.4, validator="conf")
    provider = answers(a="yes", b="no", c="yes")
    ladder = [
        Rung(name="a", provider=provider, model="a", price_in=1, price_out=1, validators=check(lambda c: low)),
        Rung(name="b", provider=provider, model="b", price_in=1, price_out=1, validators=agrees),
        Rung(name="c", provider=provider, model="c", price_in=1, price_out=1, validators=agrees),
    ]
    result = Cascade(ladder).run_sync(MSG)
    assert result.answered_by == "c" and result.output == "yes"
    assert seen == [
        (("a", "yes", False, 0.4), 1, False),
        (("a", "yes", False, 0.4), ("b", "no", False, None), 2, True),
    ]


def test_function_provider_text_answers_are_charged_an_upper_bound() -> None:
    result = Cascade(rungs(FunctionProvider(lambda r: "plain text"), "only")).run_sync(MSG)
    assert result.output == "plain text" and result.attempts[0].tokens_out == len(b"plain text") + 1
    with pytest.raises(ConfigError, match="FunctionProvider"):
        FunctionProvider("not callable")  # type: ignore[arg-type]


def test_function_provider_may_be_async() -> None:
    async def model(r: CompletionRequest) -> str:
        return f"echo {r.model}"

    result = Cascade(rungs(FunctionProvider(model), "m")).run_sync(MSG)
    assert result.output == "echo m"


def test_self_consistency_sets_its_samples_temperature() -> None:
    temps: list[Any] = []

    def model(r: CompletionRequest) -> Completion:
        temps.append(r.params.get("temperature"))
        return Completion("same", 1, 1)

    sc = SelfConsistency(samples=3, temperature=1.3)
    Cascade(rungs(FunctionProvider(model), "m", validators=sc)).run_sync(MSG)
    assert temps == [None, 1.3, 1.3]
    with pytest.raises(ConfigError, match="temperature"):
        SelfConsistency(temperature=0)


def test_sample_temperature_on_the_cascade_is_deprecated_but_honoured() -> None:
    temps: list[Any] = []

    def model(r: CompletionRequest) -> Completion:
        temps.append(r.params.get("temperature"))
        return Completion("same", 1, 1)

    with pytest.warns(DeprecationWarning, match="SelfConsistency"):
        c = Cascade(rungs(FunctionProvider(model), "m", validators=SelfConsistency(samples=2)), sample_temperature=0.9)
    c.run_sync(MSG)
    assert temps == [None, 0.9]


def test_an_unchecked_rung_below_the_top_is_named_in_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"rungs \['a'\] have no checks"):
        Cascade(rungs(answers(a="x", b="y"), "a", "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cascade(rungs(answers(a="x", b="y"), "a", "b"), validators=never)  # checked: no warning
        Cascade(rungs(answers(a="x"), "a"))  # a lone top rung accepts its answer: no warning


def test_params_for_names_what_a_rung_sends() -> None:
    c = Cascade(rungs(answers(a="x"), "a", params={"temperature": 0.2}))
    assert c.params_for("a") == {"temperature": 0.2}
    with pytest.raises(ConfigError, match="no rung named 'zz'"):
        c.params_for("zz")


def test_a_response_model_checks_every_rung_and_types_the_parsed_answer() -> None:
    from pydantic import BaseModel

    class Ticket(BaseModel):
        label: str

    provider = answers(a='{"nope": 1}', b='{"label": "billing"}')
    c = Cascade(rungs(provider, "a", "b"), response_model=Ticket)
    result = c.run_sync(MSG)
    assert result.answered_by == "b" and result.parsed == Ticket(label="billing")
    assert result.attempts[0].reasons == ["schema_invalid"]
    assert result.to_dict()["parsed"] == {"label": "billing"}
    with pytest.raises(ConfigError, match="response_model: expected a pydantic model class"):
        Cascade(rungs(provider, "a"), response_model=dict)
