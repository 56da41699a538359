"""The gateway: an OpenAI-compatible HTTP server in front of one or more cascades, so any OpenAI client
(Python, TypeScript, Go, curl) uses the pattern by changing its ``base_url``. Needs the ``[gateway]``
extra (Starlette, uvicorn, redis). ``cascade serve APP`` runs it; see docs/guides/gateway.md."""

from __future__ import annotations

from typing import Any

from ._gateway import Gateway
from ._keys import ApiKey, KeyRing, hash_key, new_key
from ._state import MemoryState, RedisState, StateStore, StateUnavailable
from ._thread import GatewayServer

__all__ = [
    "ApiKey",
    "Gateway",
    "GatewayServer",
    "KeyRing",
    "MemoryState",
    "RedisState",
    "StateStore",
    "StateUnavailable",
    "create_app",
    "hash_key",
    "new_key",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # Starlette is imported when an app is made, not with cascade's CLI
        from ._app import create_app

        return create_app
    raise AttributeError(f"module 'cascade.gateway' has no attribute {name!r}")
