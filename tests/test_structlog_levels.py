"""StructlogSink logs each event at a level that means something, through real structlog and a real cascade."""

from __future__ import annotations

import io
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog
from checks import is_json
from structlog.testing import capture_logs

from cascade import CallerError, Cascade, OpenAICompatible, RetryPolicy, Rung, StructlogSink
from cascade.testing import Reply, TestServer

NO_RETRY = RetryPolicy(attempts=1)
MSG = [{"role": "user", "content": "hi"}]


def ladder(server: TestServer, top_price: float = 1.0) -> list[Rung]:
    p = OpenAICompatible(server.base_url)
    return [
        Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.1, retry=NO_RETRY),
        Rung(name="large", provider=p, model="large-m", price_in=top_price, price_out=top_price, retry=NO_RETRY),
    ]


def levels(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["event"], str(e.get("outcome")), e["log_level"]) for e in logs]


def run(server: TestServer, **kw: Any) -> list[tuple[str, str, str]]:
    with capture_logs() as logs, Cascade(ladder(server, kw.pop("top_price", 1.0)), log=StructlogSink(), **kw) as c:
        c.run_sync(MSG)
    return levels(logs)


def test_a_first_try_answer_is_debug_and_an_escalation_is_info(server: TestServer) -> None:
    server.script("small-m", Reply(content="{}"), Reply(content="no"))
    server.script("large-m", Reply(content="{}"))
    assert run(server, validators=[is_json]) == [("attempt", "accepted", "debug"), ("request", "accepted", "debug")]
    assert run(server, validators=[is_json]) == [
        ("attempt", "escalated", "info"),
        ("attempt", "accepted", "debug"),
        ("request", "accepted", "info"),  # answered, but only after climbing
    ]


def test_exhaustion_and_failed_calls_are_warnings(server: TestServer) -> None:
    server.script("small-m", Reply(status=500))
    server.script("large-m", Reply(content="no"))
    assert run(server, validators=[is_json], on_exhausted="best_effort") == [
        ("attempt", "error", "warning"),
        ("attempt", "escalated", "info"),
        ("request", "exhausted", "warning"),
    ]


def test_a_budget_stop_is_a_warning(server: TestServer) -> None:
    server.script("small-m", Reply(content="no", tokens_in=1, tokens_out=1))
    got = run(server, validators=[is_json], on_exhausted="best_effort", budget_usd=1e-4, top_price=1e6)
    assert got == [
        ("attempt", "escalated", "info"),
        ("attempt", "skipped", "warning"),
        ("request", "exhausted", "warning"),
    ]


def test_a_caller_error_is_an_error(server: TestServer) -> None:
    server.script("small-m", Reply(status=400))
    cascade = Cascade(ladder(server), validators=[is_json], log=StructlogSink(), on_exhausted="best_effort")
    with capture_logs() as logs, cascade, pytest.raises(CallerError):
        cascade.run_sync(MSG)
    assert levels(logs) == [("attempt", "error", "error"), ("request", "error", "error")]


def test_a_warning_level_logger_keeps_what_an_operator_must_see() -> None:
    """With the stdlib at WARNING, routine events are filtered out and warnings reach the handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    std = logging.getLogger("cascade-levels-test")
    std.addHandler(handler)
    std.setLevel(logging.WARNING)
    std.propagate = False
    logger = structlog.wrap_logger(
        std, wrapper_class=structlog.stdlib.BoundLogger, processors=[structlog.processors.KeyValueRenderer()]
    )
    sink = StructlogSink(logger)
    sink.emit({"event": "attempt", "outcome": "accepted", "rung": "small"})
    sink.emit({"event": "attempt", "outcome": "escalated", "rung": "small", "reasons": ["schema"]})
    sink.emit({"event": "breaker", "rung": "small", "from": "closed", "to": "open", "reason": "timeout"})
    sink.emit({"event": "request", "outcome": "exhausted", "escalations": 1})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "event='breaker'" in lines[0] and "to='open'" in lines[0]
    assert "event='request'" in lines[1] and "outcome='exhausted'" in lines[1]
