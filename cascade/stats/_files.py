"""``--per-file``: each log's own figures next to the merged ones (one log per batch worker).

The merged figures are computed from the same events, so they are the sums of the per-file counts and
costs. Which files a directory or a glob names is ``cascade._logs._files``'s.
"""

from __future__ import annotations

from typing import Any

from ._aggregate import Stats


def file_summary(path: str, stats: Stats) -> dict[str, Any]:
    """One file's headline figures (the keys of the merged report they add up to)."""
    d = stats.as_dict()
    return {
        "file": path,
        "requests": d["requests"],
        "accepted": d["accepted"],
        "accepted_rate": d["accepted_rate"],
        "escalated_requests": d["escalated_requests"]["count"],
        "attempts": d["attempts"],
        "calls": d["calls"],
        "errors": d["errors"]["count"],
        "cost_usd": d["cost_usd"],
        "cost_per_request_usd": d["cost_per_request_usd"],
        "latency_ms_p50": (d["latency_ms"] or {}).get("p50"),
        "incomplete_requests": d["incomplete_requests"],
    }
