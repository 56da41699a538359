"""The spend cap: property-tested over real HTTP against the test server (see cascade._ledger)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade import Cascade, Ladder, MemorySink, OpenAICompatible, RequestParams, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import Candidate, Verdict

MSG = [{"role": "user", "content": "Extract the total from: invoice 17, total 12.50 EUR"}]


class SampleThenJudge:
    """Draws k samples (so concurrent reservations are exercised), then passes on chosen rungs only."""

    name = "sample_then_judge"

    def __init__(self, k: int, passing: set[str]) -> None:
        self.k, self.passing = k, passing

    async def validate(self, c: Candidate) -> Verdict:
        await c.sample(self.k)
        return Verdict(c.rung in self.passing, "judged_no")


rung_st = st.tuples(
    st.floats(0, 40),  # price_in per 1M
    st.floats(0, 120),  # price_out per 1M
    st.one_of(st.none(), st.integers(1, 3000)),  # rung max_tokens
    st.integers(0, 5000),  # tokens the model would like to write
    st.booleans(),  # does the rung's answer pass
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rungs=st.lists(rung_st, min_size=1, max_size=3), budget=st.floats(0, 0.05), k=st.integers(0, 3))
def test_spend_never_exceeds_the_cap(server: TestServer, rungs: list[Any], budget: float, k: int) -> None:
    server.reset()
    provider = OpenAICompatible(server.base_url)
    built: list[Rung] = []
    passing: set[str] = set()
    for i, (p_in, p_out, max_tokens, wants, passes) in enumerate(rungs):
        name = f"r{i}"

        # A model that honours max_tokens: writes what it wants, cut at the max_tokens it was sent.
        def reply(body: dict[str, Any], w: int = wants) -> Reply:
            return Reply(content="x", tokens_in=20, tokens_out=min(w, body.get("max_tokens", w)))

        server.responder(name, reply)
        params = RequestParams(max_tokens=max_tokens) if max_tokens else RequestParams()
        built.append(Rung(name=name, provider=provider, model=name, price_in=p_in, price_out=p_out, params=params))
        if passes:
            passing.add(name)
    sink = MemorySink()
    cascade = Cascade(
        Ladder(built, order="as_given"),
        validators=SampleThenJudge(k, passing),
        budget_usd=budget,
        on_exhausted="best_effort",
        log=sink,
    )
    result = asyncio.run(cascade.run(MSG))
    assert result.cost_usd <= budget + 1e-12
    assert result.cost_usd == pytest.approx(sum(a.cost_usd for a in result.attempts))
    assert sink.of("request")[0]["cost_usd"] == pytest.approx(result.cost_usd)
    reached_everything = result.accepted or len({a.rung for a in result.attempts}) == len(built)
    stopped = any("budget_exhausted" in a.reasons for a in result.attempts)
    assert reached_everything or stopped


def test_budget_stops_before_the_call_that_could_exceed_it(server: TestServer) -> None:
    p = OpenAICompatible(server.base_url)
    ladder = Ladder(
        [
            Rung(
                name="cheap",
                provider=p,
                model="cheap",
                price_in=0.1,
                price_out=0.1,
                params=RequestParams(max_tokens=100),
            ),
            Rung(
                name="dear", provider=p, model="dear", price_in=30, price_out=60, params=RequestParams(max_tokens=2000)
            ),
        ]
    )
    never = SampleThenJudge(0, set())
    result = Cascade(ladder, validators=never, budget_usd=0.001, on_exhausted="best_effort").run_sync(MSG)
    assert [a.rung for a in result.attempts] == ["cheap", "dear"]
    assert result.attempts[1].outcome == "skipped" and result.attempts[1].reasons == ["budget_exhausted"]
    assert [r.model for r in server.requests] == ["cheap"]  # the dear rung was never called


def test_budget_sets_max_tokens_when_the_rung_has_none(server: TestServer) -> None:
    p = OpenAICompatible(server.base_url)
    rung = Rung(name="a", provider=p, model="a", price_in=0, price_out=1_000_000)  # $1 per output token
    Cascade([rung], budget_usd=3.5).run_sync(MSG)
    assert server.requests[0].body["max_tokens"] == 3
