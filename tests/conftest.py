"""Shared fixtures. ``server``: the suite's OpenAI/Anthropic-compatible test server, reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cascade.testing import TestServer


@pytest.fixture(scope="session")
def _session_server() -> Iterator[TestServer]:
    """One real HTTP server on 127.0.0.1 for the whole session (started once: cheap per test)."""
    with TestServer() as srv:
        yield srv


@pytest.fixture
def server(_session_server: TestServer) -> Iterator[TestServer]:
    """The session's test server with nothing scripted; fails the test if a responder raised."""
    _session_server.reset()
    yield _session_server
    errors = _session_server.errors
    if errors:
        pytest.fail("test server handler errors:\n" + "\n".join(errors))


@pytest.fixture(autouse=True, scope="session")
def _every_event_matches_the_published_schema() -> Iterator[None]:
    """Every event any test makes the library write is checked against cascade/event-schema.json, so
    the published schema cannot drift from what the code emits."""
    import json
    from pathlib import Path

    import jsonschema

    import cascade
    from cascade._sinks import EventLog

    schema = json.loads((Path(cascade.__file__).parent / "event-schema.json").read_text(encoding="utf-8"))
    by_kind = {  # one validator per kind: the event field says which definition applies
        d["properties"]["event"]["const"]: jsonschema.Draft202012Validator({**d, "$defs": schema["$defs"]})
        for d in schema["$defs"].values()
        if "event" in d.get("properties", {})
    }
    original = EventLog.emit

    def checked(self: EventLog, event: Any) -> None:
        validator = by_kind.get(event.get("event"))
        if validator is None:
            raise AssertionError(f"event kind not in cascade/event-schema.json: {event!r:.300}")
        errors = sorted(validator.iter_errors(dict(event)), key=str)
        if errors:
            raise AssertionError(f"event does not match cascade/event-schema.json: {errors[0].message}: {event!r:.300}")
        original(self, event)

    EventLog.emit = checked  # type: ignore[method-assign]
    yield
    EventLog.emit = original  # type: ignore[method-assign]
