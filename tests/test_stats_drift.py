"""``cascade stats --compare``: drift flagged when real, not on tiny windows; ``--plot`` writes a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder, acc, esc

from cascade._cli import main
from cascade.stats._drift import chi2_sf, two_proportion, welch

START = 1_764_115_200.0
HOUR = ("--compare", "1h", "--until", str(START + 7200))  # the last hour vs the one before


def hour(b: LogBuilder, n: int, escalate_every: int, reason: str = "schema", tokens_out: int = 50) -> None:
    """``n`` requests spread over the next hour; every ``escalate_every``-th escalates small -> medium."""
    base = b.ts
    for i in range(n):
        attempts = [acc("small", tokens_out=tokens_out)]
        if escalate_every and i % escalate_every == 0:
            attempts = [esc("small", reason, tokens_out=tokens_out), acc("medium", tokens_out=tokens_out)]
        b.req(attempts)
        b.ts = base + (i + 1) * 3600 / n


def compare(capsys: pytest.CaptureFixture[str], log: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["stats", "--json", str(log), *args])
    return code, json.loads(capsys.readouterr().out)


def finding(d: dict[str, Any], rung: str, metric: str) -> dict[str, Any]:
    return next(f for f in d["compare"]["findings"] if f["rung"] == rung and f["metric"] == metric)


def test_escalation_rate_jump_is_flagged_and_fails_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = LogBuilder(START)
    hour(b, 200, 10)  # 10% escalate
    hour(b, 200, 2)  # 50% escalate
    log = b.write(tmp_path / "a.jsonl")
    code, d = compare(capsys, log, *HOUR, "--fail-on-drift")
    assert code == 3 and d["compare"]["drifted"] is True
    f = finding(d, "small", "escalation_rate")
    assert (f["previous"], f["current"], f["n_previous"], f["n_current"]) == (0.1, 0.5, 200, 200)
    assert f["flagged"] and f["p_value"] < 1e-6 and round(f["change"], 6) == 0.4
    assert d["compare"]["previous"]["requests"] == 200 and d["compare"]["current"]["requests"] == 200
    assert not finding(d, "small", "reason_mix")["flagged"]  # same single reason
    assert finding(d, "(all)", "escalation_rate")["flagged"]
    # the same by request count
    code, d = compare(capsys, log, "--compare", "200r", "--fail-on-drift")
    assert code == 3 and finding(d, "small", "escalation_rate")["current"] == 0.5
    # without --fail-on-drift the drift is reported but the exit code stays 0
    assert compare(capsys, log, *HOUR)[0] == 0


def test_steady_log_and_tiny_windows_do_not_cry_wolf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = LogBuilder(START)
    hour(b, 200, 10)
    hour(b, 200, 10)
    code, d = compare(capsys, b.write(tmp_path / "steady.jsonl"), *HOUR, "--fail-on-drift")
    assert code == 0 and d["compare"]["drifted"] is False
    assert finding(d, "small", "escalation_rate")["note"] == "ok"

    b = LogBuilder(START)
    hour(b, 10, 10)  # 1 of 10
    hour(b, 10, 3)  # 4 of 10: a big move on tiny counts
    code, d = compare(capsys, b.write(tmp_path / "tiny.jsonl"), *HOUR, "--fail-on-drift")
    f = finding(d, "small", "escalation_rate")
    assert code == 0 and not f["flagged"] and f["note"] == "insufficient data"
    code, d = compare(
        capsys,
        tmp_path / "tiny.jsonl",
        *HOUR,
        "--min-count",
        "1",
        "--fail-on-drift",
    )
    f = finding(d, "small", "escalation_rate")  # counted, moved, but not significant at alpha 0.01
    assert code == 0 and f["note"] == "moved, not significant" and f["p_value"] > 0.01


def test_reason_mix_and_cost_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = LogBuilder(START)
    hour(b, 200, 4, reason="schema")
    hour(b, 200, 4, reason="consistency", tokens_out=100)
    code, d = compare(capsys, b.write(tmp_path / "mix.jsonl"), *HOUR, "--fail-on-drift")
    assert code == 3
    assert not finding(d, "small", "escalation_rate")["flagged"]
    mix = finding(d, "small", "reason_mix")
    assert mix["flagged"] and mix["change"] == 1.0
    assert mix["previous"] == {"schema": 1.0} and mix["current"] == {"consistency": 1.0}
    cost = finding(d, "small", "cost_per_attempt")  # 100*0.1+50*0.4 -> 100*0.1+100*0.4 per 1M: 30 -> 50
    assert cost["flagged"] and round(cost["change"], 6) == round(50 / 30 - 1, 6)


def test_statistics_helpers() -> None:
    c = 0.1378 / 95  # constant cost, sums with float rounding: no difference, not p = 0
    assert welch(18, 18 * c, 18 * c * c, 77, sum([c] * 77), sum([c * c] * 77)) == 1.0
    assert welch(20, 20.0, 20.0, 20, 40.0, 80.0) == 0.0  # constant 1.0 vs constant 2.0
    assert two_proportion(10, 100, 10, 100) == 1.0
    assert two_proportion(10, 100, 50, 100) < 1e-6
    assert abs(chi2_sf(3.841, 1) - 0.05) < 1e-3 and abs(chi2_sf(5.991, 2) - 0.05) < 1e-3
    assert abs(chi2_sf(7.815, 3) - 0.05) < 2e-3 and abs(chi2_sf(18.307, 10) - 0.05) < 2e-3


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    b = LogBuilder(START)
    hour(b, 100, 10)
    hour(b, 100, 2)
    out = tmp_path / "stats.png"
    assert main(["stats", str(b.write(tmp_path / "a.jsonl")), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert f"plot written to {out}" in capsys.readouterr().out
