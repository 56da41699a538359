"""Many logs as one: each worker of a batch job writes its own file; ``cascade stats`` reads them all.

A path may be a file (plain or gzip), a directory (its ``*.jsonl`` and ``*.jsonl.gz`` files) or a glob
(``'logs/worker-*.jsonl*'``, quoted so the shell leaves it to us). ``--per-file`` adds each file's own
figures next to the merged ones; the merged figures are computed from the same events, so they are
the sums of the per-file counts and costs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from typing import Any

from .._logs._read import LogFileError
from ._aggregate import Stats

LOG_PATTERNS = ("*.jsonl", "*.jsonl.gz")


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files, directories and globs as the list of files they name, in order, each once."""
    out: list[str] = []
    for p in paths:
        path = os.fspath(p)
        if glob.has_magic(path) and not os.path.exists(path):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
            if not found:
                raise LogFileError(f"no log file matches {path}")
        elif os.path.isdir(path):
            found = sorted({f for pattern in LOG_PATTERNS for f in glob.glob(os.path.join(glob.escape(path), pattern))})
            if not found:
                raise LogFileError(f"log directory has no *.jsonl or *.jsonl.gz file: {path}")
        else:
            found = [path]
        out += [f for f in found if f not in out]
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
