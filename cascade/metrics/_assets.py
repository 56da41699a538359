"""The files shipped for the live metrics: Prometheus rules and a Grafana dashboard (package data)."""

from __future__ import annotations

from importlib.resources import files

from .._errors import ConfigError

ASSETS = {"alerts": "alerts.yml", "dashboard": "grafana-dashboard.json"}
"""``alerts``: recording and alerting rules for prometheus.yml's ``rule_files``; ``dashboard``: Grafana JSON."""


def asset_text(name: str) -> str:
    """The text of a shipped file by its short name (``alerts`` or ``dashboard``)."""
    if name not in ASSETS:
        raise ConfigError(f"asset: expected one of {sorted(ASSETS)}, got {name!r}")
    return (files(__package__) / ASSETS[name]).read_text(encoding="utf-8")
