"""State the gateway's replicas share: per-key spend, sticky sessions, rung health. In memory by default (one
process); :class:`RedisState` puts it in Redis so several gateway processes agree.

Money is kept in integer nano-dollars: a reservation and its settlement add up exactly, in Python as
in Redis, where floats would drift.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from .._errors import CascadeError

T = TypeVar("T")

NANO = 1_000_000_000


def to_nano(usd: float) -> int:
    return math.ceil(usd * NANO - 1e-6)


class StateStore(Protocol):
    """``reserve`` takes up to ``want_usd`` of what is left of ``cap_usd`` on an account, atomically,
    and returns what it took (0 when nothing is left); ``settle`` returns the unspent part. ``get``/
    ``set`` hold short strings with a time to live (sticky sessions)."""

    async def reserve(self, account: str, cap_usd: float, want_usd: float, ttl_s: float) -> float: ...

    async def settle(self, account: str, reserved_usd: float, spent_usd: float) -> None: ...

    async def spent(self, account: str) -> float: ...

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_s: float) -> None: ...

    async def get_many(self, keys: list[str]) -> list[str | None]: ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryState:
    """One process's state, with expiry; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Any, float]] = {}

    def _live(self, key: str) -> Any:
        item = self._values.get(key)
        if item is None or item[1] < time.monotonic():
            self._values.pop(key, None)
            return None
        return item[0]

    async def reserve(self, account: str, cap_usd: float, want_usd: float, ttl_s: float) -> float:
        with self._lock:
            spent = int(self._live(account) or 0)
            take = max(0, min(to_nano(want_usd), to_nano(cap_usd) - spent))
            self._values[account] = (spent + take, time.monotonic() + ttl_s)
        return take / NANO

    async def settle(self, account: str, reserved_usd: float, spent_usd: float) -> None:
        with self._lock:
            item = self._values.get(account)
            if item is not None:
                self._values[account] = (int(item[0]) - to_nano(reserved_usd) + to_nano(spent_usd), item[1])

    async def spent(self, account: str) -> float:
        with self._lock:
            return int(self._live(account) or 0) / NANO

    async def get(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        with self._lock:
            self._values[key] = (value, time.monotonic() + ttl_s)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [await self.get(k) for k in keys]

    async def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "MemoryState()"


_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local take = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - spent)
if take < 0 then take = 0 end
redis.call('INCRBY', KEYS[1], take)
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return take
"""


class StateUnavailable(CascadeError):
    """The shared state store does not answer: the gateway says 503 rather than guess at spend."""


class RedisState:
    """State in Redis (``redis`` client from the ``[gateway]`` extra): a reservation is one Lua script,
    so concurrent requests on any number of replicas never take more than the cap together.
    ``prefix`` namespaces the keys (one Redis for several gateways)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "cascade:") -> None:
        from redis import asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self._redis: Any = aioredis.from_url(url, decode_responses=True)
        self._reserve = self._redis.register_script(_RESERVE)

    async def _do(self, call: Awaitable[T]) -> T:
        from redis.exceptions import RedisError

        try:
            return await call
        except (RedisError, OSError) as exc:
            raise StateUnavailable(f"state store {self!r}: {type(exc).__name__}: {exc}") from None

    async def reserve(self, account: str, cap_usd: float, want_usd: float, ttl_s: float) -> float:
        args = [to_nano(cap_usd), to_nano(want_usd), max(1, math.ceil(ttl_s))]
        taken = await self._do(self._reserve(keys=[self.prefix + account], args=args))
        return int(taken) / NANO

    async def settle(self, account: str, reserved_usd: float, spent_usd: float) -> None:
        delta = to_nano(spent_usd) - to_nano(reserved_usd)
        if delta:
            await self._do(self._redis.incrby(self.prefix + account, delta))

    async def spent(self, account: str) -> float:
        return int(await self._do(self._redis.get(self.prefix + account)) or 0) / NANO

    async def get(self, key: str) -> str | None:
        value = await self._do(self._redis.get(self.prefix + key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        await self._do(self._redis.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000))))

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        values = await self._do(self._redis.mget([self.prefix + k for k in keys]))
        return [None if v is None else str(v) for v in values]

    async def delete(self, key: str) -> None:
        await self._do(self._redis.delete(self.prefix + key))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisState({self.url.split('@')[-1]!r})"  # no password in a repr
