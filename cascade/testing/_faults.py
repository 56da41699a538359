"""Transport-level faults: broken connections, hangs, slow and oversized bodies. Each takes the aiohttp
request and returns the response object aiohttp should finish (usually one whose write fails quietly
because the connection is gone)."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

from ._aiohttp import web

Wait = Callable[[float | None], Awaitable[bool]]
"""``await wait(seconds)`` sleeps (None: forever) and returns True early when the server is stopping."""


def _abort(request: web.BaseRequest, *, rst: bool) -> None:
    """Drop the connection; ``rst`` makes it a TCP reset (SO_LINGER 0) instead of an orderly close."""
    transport = request.transport
    if transport is None:
        return
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


async def close(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection before sending anything."""
    _abort(request, rst=False)
    return web.Response()


async def hang(request: web.BaseRequest, wait: Wait) -> web.StreamResponse:
    """Never answer: wait until the client disconnects (aiohttp then cancels us) or the server stops."""
    await wait(None)
    _abort(request, rst=True)
    return web.Response()


async def reset(request: web.BaseRequest, body: bytes, wait: Wait) -> web.StreamResponse:
    """Send the headers (announcing the full length) and half the body, then reset the connection."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    try:
        await response.prepare(request)
        await response.write(body[: max(1, len(body) // 2)])
        # A reset discards unsent bytes: wait until the partial body has left the process.
        transport = request.transport
        for _ in range(100):
            if transport is None or transport.get_write_buffer_size() == 0:
                break
            await wait(0.01)
        await wait(0.02)
    except ConnectionError:
        return response
    _abort(request, rst=True)
    return response


async def trickle(
    request: web.BaseRequest,
    status: int,
    headers: dict[str, str],
    body: bytes,
    chunk: int,
    pause_s: float,
    wait: Wait,
) -> web.StreamResponse:
    """Send a complete, valid body ``chunk`` bytes at a time with ``pause_s`` between writes."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    try:
        await response.prepare(request)
        for start in range(0, len(body), chunk):
            await response.write(body[start : start + chunk])
            if start + chunk < len(body) and await wait(pause_s):
                _abort(request, rst=True)
                return response
    except ConnectionError:
        pass
    return response
