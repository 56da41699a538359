"""Every code block of README.md and docs/ fenced as ```python runnable is executed here, as written.

A block runs in a fresh namespace with ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` pointing at the suite's
test server, which plays any model: it answers ``{"label": "billing"}`` and is 60% sure of the label
(40% for "refund"), so a confidence check of 0.8 sends the cheap rung's answer up. Blocks fenced
```python runnable local need the offline model ladder and skip, saying why, when it is not installed.
A block that needs other answers starts its own ``TestServer``.
"""

from __future__ import annotations

import math
import os
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cascade import CascadeResult
from cascade.testing import Reply, TestServer

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    path: str
    line: int
    tags: tuple[str, ...]
    code: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def runnable_blocks() -> list[Block]:
    """The ```python runnable blocks of README.md and docs/**/*.md, with where they start."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    out: list[Block] = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            info = m.group("info").split()
            if info[:2] != ["python", "runnable"]:
                continue
            indent = len(m.group("indent"))
            code = "\n".join(line[indent:] for line in m.group("body").splitlines())
            line = text.count("\n", 0, m.start()) + 1
            out.append(Block(str(f.relative_to(ROOT)), line, tuple(info[2:]), code))
    return out


BLOCKS = runnable_blocks()


def ticket_reply() -> Reply:
    """``{"label":"billing"}``, the label's first token at probability 0.6 against 0.4 for "refund"."""
    sure, other = math.log(0.6), math.log(0.4)
    tokens = [
        ('{"', 0.0, {}),
        ("label", 0.0, {}),
        ('":"', 0.0, {}),
        ("billing", sure, {"refund": other}),
        ('"}', 0.0, {}),
    ]
    return Reply(content='{"label":"billing"}', logprobs=tokens)


@pytest.fixture(scope="module")
def models() -> Iterator[TestServer]:
    with TestServer() as srv:
        yield srv


def test_the_docs_have_runnable_blocks() -> None:
    """The collector finds the README's first example and blocks in docs/ (a broken regex would find none)."""
    paths = {b.path for b in BLOCKS}
    assert "README.md" in paths, paths
    assert any(p.startswith("docs/") for p in paths)


def test_the_collector_reads_fences_as_written(tmp_path: Path) -> None:
    text = "```python\nnot me\n```\n\n```python runnable\nx = 1\n```\n\n  ```python runnable local\n  y = 2\n  ```\n"
    found = [(m.group("info").split(), m.group("body")) for m in FENCE.finditer(text)]
    assert found == [
        (["python"], "not me\n"),
        (["python", "runnable"], "x = 1\n"),
        (["python", "runnable", "local"], "  y = 2\n"),
    ]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_runnable_block(block: Block, models: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if "local" in block.tags:
        from cascade.local import LocalLadderUnavailable, check_available

        try:
            check_available()
        except LocalLadderUnavailable as exc:
            pytest.skip(f"{block.id} needs the offline model ladder: {str(exc)[:240]}")
    models.reset()
    models.default(ticket_reply())
    monkeypatch.setenv("OPENAI_BASE_URL", models.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
    monkeypatch.chdir(tmp_path)  # a block that writes a log writes it here
    module = types.ModuleType("docs_block")  # a real module: pydantic resolves annotations through it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block.code, f"{block.id} (runnable block)", "exec"), module.__dict__)
    assert not models.errors, models.errors
    result = module.__dict__.get("result")
    if isinstance(result, CascadeResult):  # an example returns the answer it paid for
        assert result.accepted and result.output is not None, result
    assert os.getcwd() == str(tmp_path)
