"""aiohttp is an optional dependency: say how to get it instead of a bare ModuleNotFoundError."""

from __future__ import annotations

try:
    from aiohttp import web
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "cascade.testing needs aiohttp: pip install 'cascade-router[testing]'", name=exc.name
    ) from exc

__all__ = ["web"]
