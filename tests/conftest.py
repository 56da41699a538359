"""Shared fixtures. ``server``: the suite's OpenAI/Anthropic-compatible test server, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

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
