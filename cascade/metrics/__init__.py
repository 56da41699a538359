"""Live metrics from the escalation events: Prometheus counters and OpenTelemetry spans.

Both are event sinks: pass them as ``log=`` (alone or in a list with a JSONL path) and they see exactly
the events the JSONL log gets. They need the ``[metrics]`` extra. The package also ships Prometheus
rules (``alerts.yml``) and a Grafana dashboard (``grafana-dashboard.json``): ``asset_text`` or
``python -m cascade.metrics alerts|dashboard`` prints them (docs/guides/telemetry.md).
"""

from ._assets import ASSETS, asset_text
from ._otel import OpenTelemetrySink
from ._prometheus import PrometheusSink

__all__ = ["ASSETS", "OpenTelemetrySink", "PrometheusSink", "asset_text"]
