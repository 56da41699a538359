"""The shipped Prometheus rules and Grafana dashboard: promtool checks and unit-tests the rules (each alert
fires on its incident and not before); the dashboard is valid JSON whose panels use the sink's metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from cascade.metrics import ASSETS, asset_text
from cascade.metrics.__main__ import main

HERE = Path(__file__).parent
SHIPPED = Path(str(files("cascade.metrics")))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: Debian's prometheus package is not installed (make test-deps)")
    return path


def test_promtool_checks_the_shipped_rules() -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", str(SHIPPED / "alerts.yml")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 13 rules found" in out.stdout


def test_each_alert_fires_on_its_scripted_incident_and_not_before() -> None:
    """tests/prometheus/*_test.yml: promtool's rule unit tests, over series written for each alert."""
    unit_tests = sorted((HERE / "prometheus").glob("*_test.yml"))
    out = subprocess.run(
        [promtool(), "test", "rules", *map(str, unit_tests)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    alerts = set(re.findall(r"- alert: (\w+)", asset_text("alerts")))
    tested = {name for f in unit_tests for name in re.findall(r"alertname: (\w+)", f.read_text())}
    assert (
        alerts
        == tested
        == {
            "CascadeEscalationRateAboveBaseline",
            "CascadeTopRungDown",
            "CascadeSpendRateHigh",
            "CascadeBudgetExhaustion",
            "CascadeFinalFailures",
        }
    )


def dashboard_exprs() -> list[str]:
    dash = json.loads(asset_text("dashboard"))
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_dashboard_is_grafana_json_on_the_sinks_metrics() -> None:
    dash = json.loads(asset_text("dashboard"))
    assert dash["uid"] == "cascade-router" and dash["schemaVersion"] >= 36
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "rung"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    used = {m for e in dashboard_exprs() for m in re.findall(r"cascade_[a-z_]+", e)}
    assert used >= {
        "cascade_cost_usd_total",
        "cascade_top_rung_cost_usd_total",
        "cascade_escalations_total",
        "cascade_attempts_total",
        "cascade_breaker_open",
        "cascade_top_rung_info",
        "cascade_budget_exhausted_total",
        "cascade_tokens_total",
        "cascade_validator_score_bucket",
    }
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("escalation rate per rung", "baseline", "top rung", "spend per hour", "budget"):
        assert topic in titles


def test_the_files_are_package_data_printed_by_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    for name, filename in ASSETS.items():
        assert main([name]) == 0
        assert capsys.readouterr().out == (SHIPPED / filename).read_text()
    assert main(["grafana"]) == 2
    assert capsys.readouterr().err == (
        "cascade.metrics: error: asset: expected one of ['alerts', 'dashboard'], got 'grafana'\n"
    )
    assert main([]) == 2 and "usage: python -m cascade.metrics {alerts,dashboard}" in capsys.readouterr().err
