"""``map`` puts results in input order even when later items finish first; ``imap`` yields each once."""

from __future__ import annotations

import asyncio
from typing import Any

from cascade import Cascade, OpenAICompatible, Rung
from cascade.testing import Reply, TestServer


def _cascade(server: TestServer) -> Cascade:
    rung = Rung(name="only", provider=OpenAICompatible(server.base_url), model="m", price_in=1, price_out=1)
    return Cascade([rung])


def _slow_first(body: dict[str, Any]) -> Reply:
    i = int(body["messages"][-1]["content"])
    return Reply(content=str(i), delay_s=0.02 * (12 - i))  # item 0 answers last


ITEMS = [[{"role": "user", "content": str(i)}] for i in range(12)]


def test_map_returns_input_order_when_answers_arrive_in_reverse(server: TestServer) -> None:
    server.responder("m", _slow_first)
    results = asyncio.run(_cascade(server).map(ITEMS, concurrency=12))
    assert [r.output for r in results] == [str(i) for i in range(12)]


def test_imap_yields_every_index_once_in_completion_order(server: TestServer) -> None:
    server.responder("m", _slow_first)

    async def go() -> list[tuple[int, str | None]]:
        return [(i, r.output) async for i, r in _cascade(server).imap(ITEMS, concurrency=12)]

    got = asyncio.run(go())
    assert sorted(got) == [(i, str(i)) for i in range(12)]
    assert got[0][0] > got[-1][0]  # later items really did finish first
