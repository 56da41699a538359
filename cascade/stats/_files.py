"""``--per-file``: each log's own figures next to the merged ones (one log per batch worker).

Each file is read once more, on its own, with the same time filter as the merged report: the merged
counts and costs are the sums of the per-file ones. Which files a directory or a glob names is
``cascade._logs._files``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._aggregate import Stats
from ._reader import read_events


def per_file_summaries(files: Sequence[str], in_range: Callable[[float], bool]) -> list[dict[str, Any]]:
    """Each file's figures, from a pass of its own (bad lines are reported by the merged pass)."""
    out = []
    for path in files:
        stats = Stats()
        for e in read_events([path], lambda _bad: None):
            if in_range(float(e["ts"])):
                stats.add(e)
        out.append(file_summary(path, stats))
    return out


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
