"""A small soak (the full one is ``benchmarks/soak.py``): 500 requests at concurrency 50 with 10% faults
from a server in its own process. Nothing lost, the ledger matches the log, no budget exceeded."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_soak() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
    spec = importlib.util.spec_from_file_location("cascade_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_soak_500_requests_at_concurrency_50_with_10_percent_faults(tmp_path: Path) -> None:
    soak = load_soak()
    with soak.fault_server(0.1, seed=3) as url:
        report = asyncio.run(soak.soak(url, 500, 50, tmp_path / "soak.jsonl", budget_usd=0.01))
    print("\n".join(report.lines()))
    assert report.failures() == []
    assert report.request_events == 500 and report.ids_not_once == 0 and report.bad_lines == 0
    assert report.over_budget == 0 and report.ledger_usd > 0
    assert sum(report.outcomes.values()) == 500 and report.outcomes["accepted"] >= 490
    # The faults really happened and were absorbed or escalated with their reason codes.
    assert report.reasons["custom:picky"] > 0 and report.retries > 0
    assert {"bad_response", "server_error", "rate_limited", "connection_error"} & set(report.reasons)
    assert report.rss_growth_after_warmup < 30  # MB; a per-request leak of a few KB would show here


@pytest.mark.slow
def test_soak_with_a_full_disk_surrogates_a_raising_provider_and_rotations(tmp_path: Path) -> None:
    """The hostile soak, small: every input has a result, every missing request line is a counted loss,
    the ledger is the sum of the attempts, and no fd is left open."""
    soak = load_soak()
    hostile = soak.Hostile(surrogate_rate=0.02, raise_rate=0.02, rotate_every=300, fsize_limit=64 * 1024)
    with soak.fault_server(0.1, seed=4) as url:
        report = asyncio.run(soak.soak(url, 600, 30, tmp_path / "soak.jsonl", 0.01, hostile, seed=4))
    print("\n".join(report.lines()))
    assert report.failures() == []
    assert report.results == 600 and report.uncounted_missing == 0
    assert report.request_events == 600 - report.lost_request_lines
    assert report.lost_lines > 0 and report.rotations > 0  # the disk really filled, the log really rotated
    assert report.reasons["exception"] > 0  # the custom provider really raised
    assert report.fds_after <= report.fds_before + 2
