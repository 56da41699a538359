"""The circuit breaker per rung: opens after repeated failures, skips the rung without a call while cooling
down, lets one probe through half-open, and says so in the log."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest
from checks import unchecked_on_purpose
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cascade import (
    Cascade,
    CircuitBreaker,
    ConfigError,
    Ladder,
    MemorySink,
    OpenAICompatible,
    ProviderError,
    RetryPolicy,
    Rung,
)
from cascade._breaker import RungBreaker
from cascade.testing import Reply, TestServer
from cascade.validators import check

MSG = [{"role": "user", "content": "hello"}]
ONE_TRY = RetryPolicy(attempts=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failure(reason: str = "server_error") -> ProviderError:
    return ProviderError("transient", reason, "boom")


def breakers(clock: Clock, events: list[dict[str, Any]], **kw: Any) -> RungBreaker:
    policy = CircuitBreaker(clock=clock, **{"failures": 3, "window_s": 10, "cooldown_s": 5, **kw})
    return RungBreaker("r", policy, events.append)


# -- the state machine, on a fake clock -----------------------------------------------------------------
def state(b: RungBreaker) -> str:
    """b.state, read afresh: mypy would keep an asserted b.state narrowed across the calls that change it."""
    return b.state


def test_opens_after_n_failures_cools_down_then_probes_once() -> None:
    clock, events = Clock(), list[dict[str, Any]]()
    b = breakers(clock, events)
    for _ in range(2):
        assert b.allow()
        b.record(failure())
    assert state(b) == "closed"
    b.record(failure("timeout"))
    assert state(b) == "open" and not b.allow()
    assert events[-1] | {"ts": None} == {
        "event": "breaker", "v": 1, "rung": "r", "from": "closed", "to": "open", "reason": "timeout",
        "failures": 3, "cooldown_s": 5, "ts": None,
    }  # fmt: skip
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow() and state(b) == "half_open"  # the probe
    assert not b.allow() and not b.allow()  # everyone else still skips
    b.record(None)
    assert state(b) == "closed" and b.allow()
    assert [(e["from"], e["to"], e["reason"]) for e in events] == [
        ("closed", "open", "timeout"),
        ("open", "half_open", "cooldown_elapsed"),
        ("half_open", "closed", "probe_succeeded"),
    ]


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    clock, events = Clock(), list[dict[str, Any]]()
    b = breakers(clock, events, failures=1)
    b.record(failure())
    clock.now += 5
    assert b.allow()
    b.record(failure("auth_failed"))
    assert b.state == "open" and not b.allow()
    assert events[-1]["from"] == "half_open" and events[-1]["reason"] == "auth_failed"
    clock.now += 5
    assert b.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_cooldown() -> None:
    clock, events = Clock(), list[dict[str, Any]]()
    b = breakers(clock, events, failures=1)
    b.record(failure())
    clock.now += 5
    assert b.allow() and not b.allow()
    clock.now += 5  # the probe was cancelled or skipped for budget: it never recorded anything
    assert b.allow() and b.state == "half_open"


def test_a_success_resets_the_count_and_old_failures_expire() -> None:
    clock, events = Clock(), list[dict[str, Any]]()
    b = breakers(clock, events)
    b.record(failure())
    b.record(failure())
    b.record(None)
    b.record(failure())
    b.record(failure())
    assert b.state == "closed"
    clock.now += 11  # both older than window_s
    b.record(failure())
    assert b.state == "closed" and events == []


def test_request_level_failures_never_trip_it() -> None:
    clock, events = Clock(), list[dict[str, Any]]()
    b = breakers(clock, events, failures=1)
    b.record(ProviderError("rung_fatal", "context_length_exceeded", "too long"))
    b.record(ProviderError("rung_fatal", "content_policy", "no"))
    b.record(ProviderError("caller", "bad_request", "bad"))
    assert b.state == "closed"
    b.record(failure())
    clock.now += 5
    assert b.allow()  # the probe gets an answer about the request: the rung is up
    b.record(ProviderError("rung_fatal", "context_length_exceeded", "too long"))
    assert b.state == "closed"


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"failures": 0}, "failures"), ({"window_s": -1}, "window_s"), ({"cooldown_s": float("inf")}, "cooldown_s")],
)
def test_bad_config_names_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"CircuitBreaker.{field}"):
        CircuitBreaker(**kw)


def test_rung_refuses_a_breaker_that_is_not_one(server: TestServer) -> None:
    p = OpenAICompatible(server.base_url)
    with pytest.raises(ValueError, match="breaker"):
        Rung(name="a", provider=p, model="m", price_in=1, price_out=1, breaker="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="breaker"):
        Cascade([Rung(name="a", provider=p, model="m", price_in=1, price_out=1)], breaker=5)  # type: ignore[arg-type]


# -- through the engine and the test server -------------------------------------------------------------
def ladder(server: TestServer, policy: CircuitBreaker | None) -> Ladder:
    p = OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=1, price_out=1, retry=ONE_TRY, breaker=policy),
            Rung(name="large", provider=p, model="large-m", price_in=9, price_out=9, retry=ONE_TRY),
        ]
    )


def small_calls(server: TestServer) -> int:
    return sum(r.model == "small-m" for r in server.requests)


@unchecked_on_purpose
def test_open_circuit_skips_the_rung_without_a_call_then_a_probe_closes_it(server: TestServer) -> None:
    clock = Clock()
    sink = MemorySink()
    cascade = Cascade(ladder(server, CircuitBreaker(failures=2, cooldown_s=30, clock=clock)), log=sink)
    server.script("small-m", Reply(fault="unavailable"), Reply(fault="unavailable"))
    for _ in range(2):
        assert cascade.run_sync(MSG).answered_by == "large"
    assert small_calls(server) == 2 and cascade.breakers.state("small") == "open"

    result = cascade.run_sync(MSG)
    assert result.answered_by == "large" and small_calls(server) == 2  # no HTTP call to the cooling rung
    skipped = result.attempts[0]
    assert (skipped.rung, skipped.outcome, skipped.reasons, skipped.calls) == ("small", "skipped",
                                                                                ["rung_cooling_down"], 0)  # fmt: skip
    assert skipped.cost_usd == 0 and skipped.error is not None and skipped.error["kind"] == "breaker"
    logged = sink.of("attempt")[-2]
    assert logged["outcome"] == "skipped" and logged["reasons"] == ["rung_cooling_down"]

    clock.now += 30
    result = cascade.run_sync(MSG)  # the probe: the rung is healthy again
    assert result.answered_by == "small" and small_calls(server) == 3
    assert cascade.breakers.state("small") == "closed"
    transitions = [(e["rung"], e["from"], e["to"]) for e in sink.of("breaker")]
    assert transitions == [
        ("small", "closed", "open"),
        ("small", "open", "half_open"),
        ("small", "half_open", "closed"),
    ]
    assert sink.of("breaker")[0]["reason"] == "server_error"
    cascade.close()


@unchecked_on_purpose
def test_half_open_lets_exactly_one_concurrent_request_through(server: TestServer) -> None:
    clock = Clock()
    cascade = Cascade(ladder(server, CircuitBreaker(failures=1, cooldown_s=30, clock=clock)))
    server.script("small-m", Reply(fault="unavailable"), Reply(content="probe", delay_s=0.3))
    cascade.run_sync(MSG)
    assert cascade.breakers.state("small") == "open"
    clock.now += 30

    async def burst() -> list[Any]:
        return await cascade.map([MSG] * 20, concurrency=20)

    results = asyncio.run(burst())
    assert small_calls(server) == 2  # the failure, then the single probe
    assert sorted(r.answered_by for r in results).count("small") == 1
    assert sum(r.attempts[0].reasons == ["rung_cooling_down"] for r in results) == 19
    assert cascade.breakers.state("small") == "closed"


def test_validator_rejections_do_not_trip_the_breaker(server: TestServer) -> None:
    cascade = Cascade(
        ladder(server, CircuitBreaker(failures=1)),
        validators=check(lambda c: c.rung == "large", name="large_only"),
    )
    for _ in range(3):
        result = cascade.run_sync(MSG)
        assert result.attempts[0].reasons == ["custom:large_only"]
    assert cascade.breakers.state("small") == "closed" and small_calls(server) == 3


@unchecked_on_purpose
def test_cascade_default_breaker_applies_to_every_rung(server: TestServer) -> None:
    server.default(Reply(fault="unavailable"))
    p = OpenAICompatible(server.base_url)
    rungs = [Rung(name=n, provider=p, model=n, price_in=1, price_out=1, retry=ONE_TRY) for n in ("a", "b")]
    cascade = Cascade(rungs, breaker=CircuitBreaker(failures=1), on_exhausted="best_effort")
    first = cascade.run_sync(MSG)
    assert [a.reasons for a in first.attempts] == [["server_error"], ["server_error"]]
    second = cascade.run_sync(MSG)  # the top rung is down too: exhausted at once, with the reason
    assert [a.reasons for a in second.attempts] == [["rung_cooling_down"], ["rung_cooling_down"]]
    assert second.outcome == "exhausted" and len(server.requests) == 2


@unchecked_on_purpose
def test_one_breaker_shared_by_threads_opens_once(server: TestServer) -> None:
    """``run_sync`` from several threads (one loop each) shares the Cascade's breaker state safely."""
    server.default(Reply(fault="unavailable"), model="small-m")
    sink = MemorySink()
    cascade = Cascade(ladder(server, CircuitBreaker(failures=3, cooldown_s=600)), log=sink)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                assert cascade.run_sync(MSG).answered_by == "large"
        except BaseException as exc:  # reported below: a thread's assert would otherwise vanish
            errors.append(exc)
        finally:
            cascade.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [(e["from"], e["to"]) for e in sink.of("breaker")] == [("closed", "open")]
    skipped = sum(e["reasons"] == ["rung_cooling_down"] for e in sink.of("attempt"))
    # Calls let through before the circuit opened (at most one per thread in flight) plus the 3 that opened it.
    assert small_calls(server) <= 3 + 6 and skipped == 30 - small_calls(server)


class BreakerMachine(RuleBasedStateMachine):
    """Random sequences of calls, outcomes and clock moves keep the breaker's promises."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.b = breakers(self.clock, self.events)
        self.granted_while_not_closed: list[float] = []
        self.consecutive = 0

    @rule(dt=st.floats(min_value=0, max_value=8))
    def tick(self, dt: float) -> None:
        self.clock.now += dt

    @rule()
    def ask(self) -> None:
        before = self.b.state
        if self.b.allow():
            if before != "closed":
                self.granted_while_not_closed.append(self.clock.now)
        else:
            assert before != "closed"  # a closed circuit never refuses

    @rule(ok=st.booleans(), reason=st.sampled_from(["server_error", "timeout", "context_length_exceeded"]))
    def report(self, ok: bool, reason: str) -> None:
        before = self.b.state
        self.b.record(None if ok else failure(reason))
        after = self.b.state
        if ok or reason == "context_length_exceeded":
            assert after == ("closed" if before != "open" else "open")
        if after == "closed":
            self.granted_while_not_closed.clear()

    @invariant()
    def at_most_one_probe_per_cooldown(self) -> None:
        g = self.granted_while_not_closed
        assert all(b - a >= 5 for a, b in itertools.pairwise(g))

    @invariant()
    def transitions_chain(self) -> None:
        legal = {("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")}
        assert all((e["from"], e["to"]) in legal for e in self.events)
        assert all(a["to"] == b["from"] for a, b in itertools.pairwise(self.events))
        assert (self.events[-1]["to"] if self.events else "closed") == self.b.state


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@unchecked_on_purpose
def test_close_from_many_threads_at_once_closes_each_loop_once(server: TestServer) -> None:
    """Each thread's ``run_sync`` loop is closed by whichever ``close()`` claims it first; before, two
    threads could both close one loop (AttributeError on its self-pipe) and leak it half-closed."""
    cascade = Cascade(ladder(server, None))
    ready, go = threading.Barrier(8), threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cascade.run_sync(MSG)
            ready.wait()
            go.wait()
            cascade.close()  # all eight at once, each seeing every thread's idle loop
        except BaseException as exc:
            errors.append(exc)

    for _ in range(20):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert all(loop.is_closed() for loop in list(cascade._loops))
