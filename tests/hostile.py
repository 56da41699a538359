"""Hostile HTTP servers on 127.0.0.1, written with raw asyncio: they misbehave at the byte level in ways
a well-behaved test server cannot (endless ``100 Continue``, headers trickled a byte at a time, gzip
bombs, a reset after the request was read, an error body that echoes the key at any offset).

    with HostileServer(behaviour) as srv:
        provider = OpenAICompatible(srv.base_url, ...)

``behaviour(request, writer)`` is a coroutine given the parsed request; it writes what it likes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Behaviour = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class HostileServer:
    behaviour: Behaviour
    requests: list[RawRequest] = field(default_factory=list)
    port: int = 0

    def __enter__(self) -> HostileServer:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = RawRequest(method, path, headers, body)
                self.requests.append(request)
                await self.behaviour(request, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def completion_body(content: str = "ok", usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
    body["usage"] = usage if usage is not None else {"prompt_tokens": 5, "completion_tokens": 5}
    return json.dumps(body).encode()


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return head.encode() + b"\r\n" + body


def answer(status: int = 200, body: bytes | None = None, headers: dict[str, str] | None = None) -> Behaviour:
    """A plain answer (a completion by default)."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response(status, completion_body() if body is None else body, headers))

    return run


def continue_flood(interval_s: float = 0.05) -> Behaviour:
    """``100 Continue`` forever: each interim reply resets a per-read timeout, never a whole-call one."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(interval_s)

    return run


def trickle_headers(interval_s: float = 0.05) -> Behaviour:
    """The status line and headers one byte at a time (then a body, if it ever gets there)."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        data = response(200, completion_body())
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(interval_s)

    return run


def gzip_bomb(decoded_bytes: int) -> Behaviour:
    """A small gzip body that inflates to ``decoded_bytes`` of zeros (within a JSON string)."""
    payload = gzip.compress(b'{"choices": [{"message": {"content": "' + b"0" * decoded_bytes + b'"}}]}', 9)

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response(200, payload, {"Content-Encoding": "gzip"}))

    return run


def reset_after_request() -> Behaviour:
    """Read the whole request (the provider bills it from here on), then reset the connection."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return run


def close_mid_body() -> Behaviour:
    """Headers promising a body, half of it, then the connection closes."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = completion_body()
        data = response(200, body)
        writer.write(data[: len(data) - len(body) // 2])
        await writer.drain()
        writer.transport.abort()

    return run


def silent() -> Behaviour:
    """Read the request and never answer."""

    async def run(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    return run


@contextlib.contextmanager
def hostile(behaviour: Behaviour) -> Iterator[HostileServer]:
    with HostileServer(behaviour) as srv:
        yield srv
