"""Which llama.cpp server runs a rung, and how it is started.

* ``"native"`` (the default): llama.cpp's own C++ server (``tools/server``), compiled by ``make local``
  from the sources vendored in the pinned llama-cpp-python sdist, for a baseline ISA. It serves
  several requests at once (``--parallel`` slots, continuous batching) and computes logprobs natively.
* ``"python"``: llama-cpp-python's server (``python -m llama_cpp.server``), the fallback, one request
  at a time; install it with ``make local-python-server``.

Every server gets ``OMP_WAIT_POLICY=PASSIVE`` unless the caller set it: several busy servers spinning
on 2 cores took 7x longer than the same servers sleeping while they wait.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._models import RUNTIME_REQUIREMENT, RUNTIME_SDIST

ServerKind = Literal["native", "python"]
SERVER_KINDS: tuple[ServerKind, ...] = ("native", "python")

SERVER_ENV = "CASCADE_LLAMA_SERVER"
"""Environment variable: path of a ``llama-server`` binary to use instead of ``<venv>/bin/llama-server``."""

PYTHON_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
"""What ``python -m llama_cpp.server`` imports; all come with ``llama-cpp-python[server]``."""


def native_server_path() -> Path:
    """Where the native server is looked for: ``$CASCADE_LLAMA_SERVER``, else this environment's
    ``bin/llama-server`` (where ``make local`` installs it). Not searched on ``PATH``: a binary of
    another version or built with ``-march=native`` is not the one the ladder was tested with."""
    env = os.environ.get(SERVER_ENV)
    return Path(env).expanduser() if env else Path(sys.prefix) / "bin" / "llama-server"


def build_flags(binary: Path) -> str | None:
    """The cmake flags the binary was built with (``make local`` writes them beside it), if known."""
    try:
        return binary.with_name(binary.name + ".flags").read_text().strip() or None
    except OSError:
        return None


def missing_server(kind: ServerKind) -> str | None:
    """What is missing to run servers of ``kind`` (a sentence saying what to do), or None."""
    if kind == "native":
        path = native_server_path()
        if path.is_file() and os.access(path, os.X_OK):
            return None
        return f"the native llama.cpp server {path} (llama-server from the {RUNTIME_SDIST} sdist; or set {SERVER_ENV})"
    missing = [m for m in PYTHON_SERVER_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return f"the Python server {RUNTIME_REQUIREMENT} (cannot import {', '.join(missing)})"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one rung's server: what to listen on, how many threads, slots and context."""

    kind: ServerKind
    model_path: Path
    alias: str
    host: str
    port: int
    threads: int
    n_ctx: int
    parallel: int

    def argv(self) -> list[str]:
        if self.kind == "native":
            return [
                str(native_server_path()),
                "--model", str(self.model_path), "--alias", self.alias,
                "--host", self.host, "--port", str(self.port),
                "--threads", str(self.threads), "--threads-batch", str(self.threads),
                # the context is split across the slots: each request gets n_ctx tokens
                "--ctx-size", str(self.n_ctx * self.parallel), "--parallel", str(self.parallel),
                "--no-webui", "--cache-ram", "256",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", self.alias,
            "--host", self.host, "--port", str(self.port),
            "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
