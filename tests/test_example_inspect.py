"""examples/inspect_escalations.py on a log written by a real cascade through the test server."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder, acc, esc

from cascade import Cascade, Ladder, OpenAICompatible, Rung
from cascade.testing import Reply, TestServer
from cascade.validators import check

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "inspect_escalations.py"


def test_inspect_escalations_reports_rates_and_hints(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "esc.jsonl"
    server.default(Reply(content="maybe", tokens_in=10, tokens_out=2), model="tiny")
    server.default(Reply(content="sure", tokens_in=10, tokens_out=2), model="big")
    p = OpenAICompatible(server.base_url)
    ladder = Ladder(
        [
            Rung(name="tiny", provider=p, model="tiny", price_in=0.1, price_out=0.1),
            Rung(name="big", provider=p, model="big", price_in=5, price_out=15),
        ]
    )
    sure = check(lambda c: c.text == "sure", name="unsure")
    with Cascade(ladder, validators=sure, log=log) as cascade:
        cascade.map_sync([[{"role": "user", "content": f"q{i}"}] for i in range(25)], concurrency=5)
    module: dict[str, Any] = runpy.run_path(str(EXAMPLE))
    assert module["main"]([str(log)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("25 requests")
    assert "rung 'tiny' accepts only 0% of the 25 requests it sees" in out
    assert "passes requests on mostly for 'custom:unsure' (25 of the 25 reasons logged for it, 100%)" in out
    assert module["main"]([str(tmp_path / "missing.jsonl")]) == 2


def test_the_share_of_a_reason_never_passes_100_percent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Skipped visits (rung_idle) and attempts with two reasons used to give "196% of its escalations"."""
    b = LogBuilder()
    for _ in range(10):
        b.req([esc("small", "regex_mismatch", "budget_overrun"), acc("large")])
    for _ in range(30):
        b.req([{"rung": "small", "outcome": "skipped", "reasons": ["rung_idle"], "calls": 0}, acc("large")])
    log = b.write(tmp_path / "idle.jsonl")
    module: dict[str, Any] = runpy.run_path(str(EXAMPLE))
    assert module["main"]([str(log)]) == 0
    out = capsys.readouterr().out
    assert "passes requests on mostly for 'rung_idle' (30 of the 50 reasons logged for it, 60%)" in out
    shares = [int(m) for m in re.findall(r"(\d+)%\)", out)]
    assert shares and max(shares) <= 100
