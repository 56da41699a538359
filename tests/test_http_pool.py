"""The HTTP providers' connection pool: ``max_connections`` split over small httpx clients (see
``cascade._providers._http.POOL_SHARD_CONNECTIONS``), a light load on one client, a heavy one spread out."""

from __future__ import annotations

import asyncio

import pytest

from cascade import ConfigError, OpenAICompatible, ProviderError
from cascade._providers._http import POOL_SHARD_CONNECTIONS
from cascade._types import CompletionRequest
from cascade.testing import Reply, TestServer

REQUEST = CompletionRequest("m", [{"role": "user", "content": "hi"}], {})


def test_sequential_requests_use_one_client_and_one_connection(server: TestServer) -> None:
    provider = OpenAICompatible(server.base_url, max_connections=4 * POOL_SHARD_CONNECTIONS)

    async def go() -> None:
        for _ in range(5):
            assert (await provider.complete(REQUEST)).text == "ok"
        pool = provider._pool()
        assert len(pool.clients) == 4
        assert [c is not None for c in pool.clients] == [True, False, False, False]
        assert pool.busy == [0, 0, 0, 0]
        await provider.aclose()

    asyncio.run(go())
    assert len(server.requests) == 5


def test_concurrent_requests_spread_over_clients_and_all_answer(server: TestServer) -> None:
    n = 3 * POOL_SHARD_CONNECTIONS
    server.default(Reply(content="slow", delay_s=0.2))
    provider = OpenAICompatible(server.base_url, max_connections=2 * POOL_SHARD_CONNECTIONS)

    async def go() -> list[str]:
        pool = provider._pool()
        seen: list[list[int]] = []

        async def one() -> str:
            out = await provider.complete(REQUEST)
            seen.append(list(pool.busy))
            return out.text

        texts = await asyncio.gather(*(one() for _ in range(n)))
        # At the first answer every other request was in flight, spread over both clients evenly.
        assert sum(seen[0]) == n - 1
        assert min(seen[0]) >= POOL_SHARD_CONNECTIONS
        assert pool.busy == [0, 0]  # every request released its client, failed or not
        await provider.aclose()
        assert all(c is not None and c.is_closed for c in pool.clients)
        return texts

    assert asyncio.run(go()) == ["slow"] * n


def test_a_failed_request_releases_its_client(server: TestServer) -> None:
    server.default(Reply(fault="close"))
    provider = OpenAICompatible(server.base_url, max_connections=1)

    async def go() -> None:
        with pytest.raises(ProviderError) as info:
            await provider.complete(REQUEST)
        assert info.value.reason == "connection_error"
        assert provider._pool().busy == [0]
        await provider.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("bad", [0, -1, 1.5, "8"])
def test_bad_max_connections_names_the_field(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"max_connections: .*got"):
        OpenAICompatible("http://127.0.0.1:1/v1", max_connections=bad)
