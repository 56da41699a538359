"""The reference pages cover what the code has: every public name, every reason code, every environment variable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cascade

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "reference"


def test_every_public_name_is_in_the_api_reference() -> None:
    page = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^::: cascade\.(\w+)$", page, re.M))
    assert set(cascade.__all__) - documented == set()


def _reason_codes_in_the_code() -> set[str]:
    """String constants passed as a reason: ``Verdict(passed, "code", ...)``, ``ProviderError(kind, "code", ...)``,
    ``CallerError("code", ...)``, ``Skip("code", ...)`` and ``reason="code"`` keywords."""
    positions = {"Verdict": 1, "ProviderError": 1, "CallerError": 0, "Skip": 0}
    found: set[str] = set()
    for path in (ROOT / "cascade").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            pos = positions.get(name)
            args = [node.args[pos]] if pos is not None and len(node.args) > pos else []
            args += [k.value for k in node.keywords if k.arg == "reason"]
            found |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return found - {"ok"}


def test_every_reason_code_the_code_emits_is_documented() -> None:
    page = (DOCS / "events.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_:<>]+)` \|", page, re.M))
    emitted = {c for c in _reason_codes_in_the_code() if not c.startswith("custom:")}
    assert emitted, "the scan found no reason code: it is broken"
    assert emitted - documented == set()


def test_every_documented_reason_code_exists_in_the_code() -> None:
    page = (DOCS / "events.md").read_text()
    section = page[page.index("## Reason codes") :]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    source = "\n".join(p.read_text() for p in (ROOT / "cascade").rglob("*.py"))
    assert {c for c in documented if f'"{c}"' not in source} == set()


def test_every_environment_variable_the_package_reads_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "cascade").rglob("*.py"))
    read = set(re.findall(r"environ(?:\.get)?[\(\[]\"([A-Z_]+)\"", source)) | set(
        re.findall(r"getenv\(\"([A-Z_]+)\"", source)
    )
    page = (DOCS / "environment.md").read_text()
    assert read, "the scan found no environment variable: it is broken"
    assert {v for v in read if f"`{v}`" not in page} == set()
