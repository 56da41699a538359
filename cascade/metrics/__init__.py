"""Live metrics from the escalation events: Prometheus counters and OpenTelemetry spans.

Both are event sinks: pass them as ``log=`` (alone or in a list with a JSONL path) and they see exactly
the events the JSONL log gets. They need the ``[metrics]`` extra.
"""

from ._otel import OpenTelemetrySink
from ._prometheus import PrometheusSink

__all__ = ["OpenTelemetrySink", "PrometheusSink"]
