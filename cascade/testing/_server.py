"""``TestServer``: a real OpenAI/Anthropic-compatible HTTP server on 127.0.0.1 with scripted answers and
faults. aiohttp runs on its own event loop in a daemon thread, so sync and async tests share it."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from . import _faults, _wire
from ._aiohttp import web
from ._reply import HUGE_BYTES, Headers, RecordedRequest, Reply
from ._script import DEFAULT_FAULTS, Responder, Script

_JSON = "application/json"
_ERROR_STATUS = {
    "server_error": 500,
    "rate_limit": 429,
    "rate_limit_no_header": 429,
    "bad_gateway": 502,
    "unavailable": 503,
}


class TestServer:
    """An OpenAI-compatible (``/v1/chat/completions``, ``/v1/models``) and Anthropic-compatible
    (``/v1/messages``) server for tests. Script answers per model with :meth:`script`, :meth:`responder`
    and :meth:`default`; inject faults with ``Reply(fault=...)`` or :meth:`fault_rate`."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record: bool = True,
        shutdown_timeout: float = 2.0,
        reuse_port: bool = False,
    ) -> None:
        self.host = host
        self._port = port
        self._reuse_port = reuse_port  # several server processes on one port (benchmarks: SO_REUSEPORT)
        self._script = Script(record=record)
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> TestServer:
        """Start serving in a background thread; returns once the port listens."""
        if self._thread is not None:
            raise RuntimeError("TestServer.start(): already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name=f"cascade-testserver-{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("TestServer.start(): the server did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            where = f"{self.host}:{self._port}"
            raise RuntimeError(f"TestServer.start(): cannot listen on {where}: {failure[0]}") from failure[0]
        return self

    def stop(self) -> None:
        """Stop promptly: hanging and delayed requests are dropped, open connections closed."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(self._shutdown_timeout + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._thread = None

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> TestServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def port(self) -> int:
        if self._thread is None:
            raise RuntimeError("TestServer.port: the server is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no path), e.g. for ``Anthropic(base_url=...)``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the OpenAI-style base URL."""
        return f"{self.url}/v1"

    # -- scripting (see Script) -----------------------------------------------------------------
    def script(self, model: str, *replies: Reply) -> None:
        """Queue replies for ``model``; each request of that model takes the next one (FIFO)."""
        self._script.script(model, replies)

    def default(self, reply: Reply, model: str | None = None) -> None:
        """The reply when ``model``'s queue is empty (``model=None``: any model); initially ``Reply()``."""
        self._script.default(reply, model)

    def responder(self, model: str, fn: Responder) -> None:
        """Answer ``model``'s requests with ``fn(request_json) -> Reply`` when its queue is empty. ``fn`` runs
        on the server's event loop: keep it quick (or async), and script slowness with ``Reply.delay_s``."""
        self._script.responder(model, fn)

    def fault_rate(
        self,
        rate: float,
        seed: int | None = None,
        faults: Iterable[str] = DEFAULT_FAULTS,
        model: str | None = None,
    ) -> None:
        """Replace a fraction ``rate`` of answers (of ``model``, or of all) by a random fault from ``faults``;
        the sequence (in order of arrival) is reproducible for a given ``seed``. A faulted request does not
        consume the queue. ``rate=0`` switches it off."""
        self._script.fault_rate(rate, seed=seed, faults=faults, model=model)

    def require_api_key(self, key: str | None) -> None:
        """Answer 401 unless ``Authorization: Bearer KEY`` (or ``x-api-key: KEY`` on /v1/messages).
        None turns the check off."""
        self._script.require_api_key(key)

    def reset(self) -> None:
        """Forget queues, responders, defaults, fault rates, the API key, recorded requests and errors."""
        self._script.reset()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in order (empty when ``record=False``)."""
        return self._script.requests

    def wait_for_requests(self, count: int = 1, timeout_s: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have been recorded (e.g. one that hangs); TimeoutError if not."""
        return self._script.wait_for_requests(count, timeout_s)

    @property
    def errors(self) -> list[str]:
        """Errors of the server's own handlers, e.g. a responder that raised (the client got a 500)."""
        return self._script.errors

    def pending(self, model: str) -> int:
        """How many scripted replies of ``model`` have not been served yet."""
        return self._script.pending(model)

    # -- the event loop thread ------------------------------------------------------------------
    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, backlog=1024, reuse_port=self._reuse_port or None)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _wait(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (None: until stop); True when the server started stopping meanwhile."""
        assert self._stopping is not None
        if self._stopping.is_set():
            return True
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    # -- handlers -------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, anthropic=False)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, anthropic=True)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._script.record(RecordedRequest(request.path, None, {}, _headers(request)))
        if not self._authorized(request, anthropic=True):  # either provider lists models
            return _json(401, _wire.openai_error(401))
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "cascade-testing"}
            for m in self._script.models()
        ]
        return _json(200, {"object": "list", "data": data})

    async def _complete(self, request: web.Request, *, anthropic: bool) -> web.StreamResponse:
        error_body = _wire.anthropic_error if anthropic else _wire.openai_error
        raw = await request.read()
        body: Any
        problem: str | None
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            body, problem = None, f"request body is not valid JSON: {exc}"
        else:
            problem = _problem(body, anthropic=anthropic)
        parsed = body if isinstance(body, dict) else {}
        model = parsed.get("model")
        model_name = model if isinstance(model, str) else None
        self._script.record(RecordedRequest(request.path, model_name, parsed, _headers(request)))
        if not self._authorized(request, anthropic=anthropic):
            return _json(401, error_body(401))
        if problem is not None:
            return _json(400, error_body(400, {"message": problem}))
        assert isinstance(model, str)
        n = parsed.get("n")
        extra = n - 1 if not anthropic and isinstance(n, int) and not isinstance(n, bool) and n > 1 else 0
        try:
            replies = [await self._reply(model, parsed)]
            if extra and replies[0].fault is None:  # n > 1: one scripted reply per choice
                replies += [await self._reply(model, parsed) for _ in range(extra)]
        except Exception as exc:
            message = f"test server: answering model {model!r} failed: {type(exc).__name__}: {exc}"
            self._script.note_error(message)
            return _json(500, error_body(500, {"message": message}))
        return await self._send(request, parsed, replies, anthropic=anthropic)

    async def _reply(self, model: str, body: dict[str, Any]) -> Reply:
        reply, fn = self._script.choose(model)
        if reply is not None:
            return reply
        assert fn is not None
        result = fn(body)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Reply):
            raise TypeError(f"the responder returned {result!r:.80}, expected a Reply")
        return result

    def _authorized(self, request: web.Request, *, anthropic: bool) -> bool:
        key = self._script.api_key
        if key is None:
            return True
        if request.headers.get("Authorization") == f"Bearer {key}":
            return True
        return anthropic and request.headers.get("x-api-key") == key

    async def _send(
        self, request: web.Request, body: dict[str, Any], replies: list[Reply], *, anthropic: bool
    ) -> web.StreamResponse:
        reply = replies[0]
        if reply.delay_s and await self._wait(reply.delay_s):
            return await _faults.hang(request, self._wait)  # stopping: drop the connection
        fault = reply.fault
        error_body = _wire.anthropic_error if anthropic else _wire.openai_error
        if fault in ("timeout", "hang"):
            return await _faults.hang(request, self._wait)
        if fault == "close":
            return await _faults.close(request)
        if fault == "html":
            page = _wire.HTML_PAGE.encode()
            return web.Response(status=502, body=page, headers={"Content-Type": "text/html", **reply.headers})
        if fault in _ERROR_STATUS:
            status = _ERROR_STATUS[fault]
            headers = {"Retry-After": "0", **reply.headers} if fault == "rate_limit" else reply.headers
            return _json(status, error_body(status, reply.error), headers)
        if reply.status >= 300 and fault is None:
            return _json(reply.status, error_body(reply.status, reply.error), reply.headers)
        if fault == "huge":  # no logprobs: 10 MB of them would stall the loop for seconds
            replies = [Reply(content=_huge_content(), tokens_in=reply.tokens_in)]
            body = {k: v for k, v in body.items() if k != "logprobs"}
        if anthropic:
            payload = _wire.anthropic_message(
                body, replies[0], content=fault != "no_choices", usage=fault != "no_usage"
            )
        else:
            payload = _wire.openai_completion(body, replies, choices=fault != "no_choices", usage=fault != "no_usage")
        data = json.dumps(payload).encode()
        if fault == "invalid_json":
            data = data[: len(data) // 2]
        if fault == "reset":
            return await _faults.reset(request, data, self._wait)
        headers = {"Content-Type": _JSON, **reply.headers}
        if fault == "trickle":
            return await _faults.trickle(
                request, reply.status, headers, data, reply.trickle_bytes, reply.trickle_pause_s, self._wait
            )
        return web.Response(status=reply.status, body=data, headers=headers)


def _problem(body: Any, *, anthropic: bool) -> str | None:
    """Why the request body is not a usable completion request (naming field and value), or None."""
    if not isinstance(body, dict):
        return f"request body must be a JSON object, got {type(body).__name__}: {json.dumps(body)[:80]}"
    model = body.get("model")
    if "model" not in body:
        return "missing required field 'model'"
    if not isinstance(model, str) or not model:
        return f"field 'model' must be a non-empty string, got {json.dumps(model)[:80]}"
    if "messages" not in body:
        return "missing required field 'messages'"
    if not isinstance(body["messages"], list):
        return f"field 'messages' must be a list of messages, got {json.dumps(body['messages'])[:80]}"
    if anthropic and "max_tokens" not in body:
        return "missing required field 'max_tokens'"
    return None


_HUGE: list[str] = []


def _huge_content() -> str:
    if not _HUGE:
        _HUGE.append("x" * HUGE_BYTES)
    return _HUGE[0]


def _headers(request: web.BaseRequest) -> Headers:
    return Headers(request.headers.items())


def _json(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), headers={"Content-Type": _JSON, **(headers or {})}
    )
