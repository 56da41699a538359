"""The gateway on HTTP (Starlette): ``POST /v1/chat/completions`` (plain and streamed), ``GET /v1/models``,
``/healthz``, ``/readyz`` and ``/metrics``. Every failure is answered in OpenAI's error shape.

Streaming never leaks a rejected draft: the cascade runs to its verdict first, then the accepted answer
is sent as chunks. So a ``stream: true`` request is checked exactly as a plain one, and the client
never sees text it must discard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "the gateway needs Starlette: pip install 'cascade-router[gateway]'", name=exc.name
    ) from exc

from ._gateway import Gateway
from ._state import StateUnavailable
from ._wire import WireError, completion_body, error_body, parse_chat, sse, stream_chunks

log = logging.getLogger("cascade.gateway")
MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app serving ``gateway`` (run it with uvicorn, or ``cascade serve``)."""

    async def chat_completions(request: Request) -> Response:
        try:
            key = gateway.authorize(request.headers.get("authorization"))
            chat = parse_chat(await _body(request))
            answer, headers = await gateway.complete(chat, key, request.headers)
        except WireError as exc:
            return _json(exc.status, exc.body, exc.headers)
        except StateUnavailable as exc:  # no spend is guessed at: the caller may retry on another replica
            log.error("gateway: %s", exc)
            return _json(503, error_body(str(exc), type="server_error", code="state_unavailable"))
        except Exception as exc:  # a bug must still answer in OpenAI's shape, and say where to look
            log.exception("gateway: unexpected error")
            body = error_body(f"internal error: {type(exc).__name__}", type="server_error", code="internal_error")
            return _json(500, body)
        headers["x-cascade-model"] = answer.model
        if not chat.stream:
            return _json(200, completion_body(answer), headers)
        chunks = sse(stream_chunks(answer, include_usage=chat.include_usage))
        return StreamingResponse(
            _aiter(chunks), media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"}
        )

    async def models(request: Request) -> Response:
        try:
            gateway.authorize(request.headers.get("authorization"))
        except WireError as exc:
            return _json(exc.status, exc.body, exc.headers)
        return _json(200, await gateway.models())

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        if await gateway.ready():
            return _json(200, {"status": "ready", "models": sorted(gateway.cascades)})
        return _json(503, {"status": "not ready", "reason": f"state store {gateway.state!r} does not answer"})

    async def metrics(request: Request) -> Response:
        if gateway.registry is None:
            body = error_body(
                "metrics need prometheus-client: pip install 'cascade-router[metrics]'", type="not_found_error"
            )
            return _json(404, body)
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(gateway.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(
            404,
            error_body(f"no route {request.method} {request.url.path}", type="invalid_request_error", code="not_found"),
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json(
            405, error_body(f"method {request.method} not allowed on {request.url.path}", type="invalid_request_error")
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed}, lifespan=lifespan)
    app.state.gateway = gateway
    return app


async def _body(request: Request) -> bytes:
    """The request body, refused with a 413 past :data:`MAX_BODY_BYTES` before it is all read."""
    too_big = WireError(413, f"request body: over the {MAX_BODY_BYTES} byte limit", code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body).encode(), status_code=status, headers=dict(headers or {}), media_type="application/json"
    )


async def _aiter(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
