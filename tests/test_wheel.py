"""The wheel a user builds (``python -m build``) holds what the docs promise and nothing of the repository's
internals, installs into a fresh venv, and runs the README's first example there against the test server.

Fast on purpose: the wheel is built without an isolated build env, and the fresh venv gets the wheel with
``--no-deps`` while its dependencies come from this venv's site-packages through a ``.pth`` line (which
does not run this venv's own ``.pth`` files, so the editable install of the checkout stays out).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_docs_examples import BLOCKS, ticket_reply

from cascade.testing import TestServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    try:
        import build  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the wheel test needs the 'build' package (dev extra): {exc}")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = out.glob("cascade_router-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv (no system site-packages) with the wheel installed and the dev venv's deps visible."""
    env_dir = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


@pytest.fixture
def models() -> Iterator[TestServer]:
    with TestServer() as srv:
        srv.default(ticket_reply())
        yield srv


def test_the_wheel_holds_the_package_and_nothing_of_the_repository(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"cascade", re.sub(r"-py3.*", "", wheel.name) + ".dist-info"}, tops
    promised_files = ["cascade/py.typed", "cascade/event-schema.json", "cascade/testing/__init__.py"]
    for promised in [*promised_files, "cascade/validators/__init__.py"]:
        assert promised in names
    assert any(n.startswith("cascade/demo/data/") and n.endswith(".jsonl") for n in names)  # `cascade demo`'s items
    internals = r"(^|/)(tests|benchmarks|\.venv|\.git)/|conftest|\.pyc$|Makefile|\.jsonl\.gz$"
    assert not [n for n in names if re.search(internals, n)]
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    for extra in ["cli", "testing", "metrics", "eval", "plot", "local", "docs"]:
        assert f"Provides-Extra: {extra}" in meta
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert "cascade = cascade._cli:main" in entry


def test_the_installed_wheel_runs_the_readme_example(venv: Path, models: TestServer, tmp_path: Path) -> None:
    (first,) = [b for b in BLOCKS if b.path == "README.md"][:1]
    script = tmp_path / "quickstart.py"
    script.write_text(
        "import cascade, sys\n"
        f"assert cascade.__file__.startswith({str(venv)!r}), cascade.__file__  # the wheel, not the checkout\n"
        + first.code
        + "\nassert result.accepted and result.answered_by == '4o', result\n"
    )
    env = {**os.environ, "OPENAI_BASE_URL": models.base_url, "OPENAI_API_KEY": "sk-wheel-test"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "label='billing'" in proc.stdout
    assert (tmp_path / "escalations.jsonl").exists()
    stats = subprocess.run(
        [str(venv / "bin" / "cascade"), "stats", "escalations.jsonl", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stats.returncode == 0, stats.stderr[-2000:]
    assert '"requests": 1' in stats.stdout
