"""A gateway served by uvicorn on a thread of this process, on a free port: for tests, notebooks and the
docs' runnable examples. ``with GatewayServer(gateway) as srv: srv.base_url``."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from ._gateway import Gateway


class GatewayServer:
    """Starts on ``__enter__`` (or ``start()``), stops on ``__exit__``; ``base_url`` ends in ``/v1``."""

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        self.gateway = gateway
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> GatewayServer:
        import uvicorn

        from ._app import create_app

        config = uvicorn.Config(create_app(self.gateway), log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._server.serve(sockets=[self._sock]))
            loop.call_soon(started.set)
            loop.run_until_complete(task)
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"gateway:{self.port}", daemon=True)
        self._thread.start()
        started.wait(10)
        for _ in range(500):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._server.started:
            raise RuntimeError(f"gateway on {self.url} did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
