"""Shared by the gateway tests: a two-rung ladder on the suite's test server, served by a real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the gateway tests need the [gateway] extra: pip install -e '.[gateway]'")

from cascade import Cascade, Ladder, OpenAICompatible, RetryPolicy, Rung
from cascade.gateway import Gateway, GatewayServer
from cascade.testing import TestServer

FAST = RetryPolicy(attempts=1)


def ladder(server: TestServer, **rung: Any) -> Ladder:
    p = OpenAICompatible(server.base_url)
    return Ladder(
        [
            Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.2, retry=FAST, **rung),
            Rung(name="large", provider=p, model="large-m", price_in=2.0, price_out=8.0, retry=FAST, **rung),
        ]
    )


@contextmanager
def serve(
    server: TestServer, validators: Any = None, *, cascade: dict[str, Any] | None = None, **gateway: Any
) -> Iterator[GatewayServer]:
    """A gateway serving ``cascade/tickets`` on a free port, stopped afterwards."""
    c = Cascade(ladder(server), validators=validators, **(cascade or {}))
    with GatewayServer(Gateway({"tickets": c}, **gateway)) as srv:
        yield srv
