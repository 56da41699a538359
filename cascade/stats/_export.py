"""``--export csv|parquet FILE``: the log as one table, a row per attempt and a row per request.

The ``event`` column says which (``attempt`` or ``request``); the columns are the union of both events'
fields, flattened: ``error_kind``/``error_reason``/``error_status`` from ``error``, ``top_rung`` as its
name, ``reasons`` joined with ``;``, one ``score.<validator>`` column per validator that gave a score
(its first score in the attempt) and one ``meta.<key>`` column per metadata key. A first pass over the
logs finds those columns (so a key first seen on the last line still gets its column), a second writes
the rows in batches: memory is bounded by the batch, not the log. The file appears only when complete.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from ._reader import Event, read_events
from ._slices import scalar

MAX_META_COLUMNS = 100
MAX_SCORE_COLUMNS = 20
BATCH = 10_000

# name, pyarrow type name; the order of the table
COLUMNS: tuple[tuple[str, str], ...] = (
    ("event", "string"),
    ("ts", "float64"),
    ("time", "string"),
    ("request_id", "string"),
    ("attempt", "int64"),
    ("rung", "string"),
    ("rung_index", "int64"),
    ("model", "string"),
    ("outcome", "string"),
    ("reasons", "string"),
    ("reason", "string"),
    ("accepted", "bool"),
    ("answered_by", "string"),
    ("escalations", "int64"),
    ("attempts", "int64"),
    ("tokens_in", "int64"),
    ("tokens_out", "int64"),
    ("cost_usd", "float64"),
    ("latency_ms", "float64"),
    ("calls", "int64"),
    ("retries", "int64"),
    ("price_in", "float64"),
    ("price_out", "float64"),
    ("error_kind", "string"),
    ("error_reason", "string"),
    ("error_status", "int64"),
    ("budget_usd", "float64"),
    ("top_rung", "string"),
)
_TYPES = dict(COLUMNS)


class ExportUnavailable(Exception):
    """pyarrow is not installed (parquet)."""


def _in_range(ts: float, since: float | None, until: float | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def _events(files: Sequence[str], since: float | None, until: float | None) -> Iterator[Event]:
    for e in read_events(files, lambda _bad: None):
        if _in_range(float(e["ts"]), since, until):
            yield e


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else scalar(value)
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if kind == "int64" else float(value)


def row(e: Event, meta_keys: list[str], validators: list[str]) -> dict[str, Any]:
    """One event as a flat row (every column present; None where the event has no value)."""
    error = e.get("error")
    err: dict[str, Any] = error if isinstance(error, dict) else {}
    top = e.get("top_rung")
    flat = {
        **{k: e.get(k) for k in _TYPES},
        "time": datetime.fromtimestamp(float(e["ts"]), tz=timezone.utc).isoformat(),
        "reasons": ";".join(r for r in e.get("reasons") or [] if isinstance(r, str))
        if e["event"] == "attempt"
        else None,
        "error_kind": err.get("kind"),
        "error_reason": err.get("reason"),
        "error_status": err.get("status"),
        "top_rung": top.get("name") if isinstance(top, dict) else None,
    }
    out = {k: _typed(flat[k], t) for k, t in COLUMNS}
    scores: dict[str, float] = {}
    for v in e.get("verdicts") or []:
        if isinstance(v, dict) and isinstance(v.get("validator"), str) and v["validator"] not in scores:
            s = v.get("score")
            if isinstance(s, (int, float)) and not isinstance(s, bool):
                scores[v["validator"]] = float(s)
    for name in validators:
        out[f"score.{name}"] = scores.get(name)
    m = e.get("metadata")
    meta: dict[str, Any] = m if isinstance(m, dict) else {}
    for key in meta_keys:
        out[f"meta.{key}"] = scalar(meta[key]) if key in meta and meta[key] is not None else None
    return out


def _columns(files: Sequence[str], since: float | None, until: float | None) -> tuple[list[str], list[str]]:
    """First pass: the metadata keys and scoring validators, in order of first appearance."""
    meta: dict[str, None] = {}
    validators: dict[str, None] = {}
    for e in _events(files, since, until):
        m = e.get("metadata")
        if isinstance(m, dict) and len(meta) < MAX_META_COLUMNS:
            meta.update((str(k), None) for k in m if len(meta) < MAX_META_COLUMNS)
        for v in e.get("verdicts") or []:
            if (
                isinstance(v, dict)
                and isinstance(v.get("validator"), str)
                and isinstance(v.get("score"), (int, float))
                and len(validators) < MAX_SCORE_COLUMNS
            ):
                validators[v["validator"]] = None
    return list(meta), list(validators)


def export(files: Sequence[str], fmt: str, path: str, *, since: float | None = None, until: float | None = None) -> int:
    """Write the table; the number of rows written."""
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ExportUnavailable("--export parquet needs pyarrow: pip install 'cascade-router[export]'") from None
    meta_keys, validators = _columns(files, since, until)
    names = [k for k, _t in COLUMNS] + [f"score.{v}" for v in validators] + [f"meta.{k}" for k in meta_keys]
    tmp = f"{path}.partial"
    n = 0
    try:
        if fmt == "csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=names)
                w.writeheader()
                for e in _events(files, since, until):
                    w.writerow(row(e, meta_keys, validators))
                    n += 1
        else:
            types = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
            fields = [pa.field(k, types[t]) for k, t in COLUMNS]
            fields += [pa.field(f"score.{v}", pa.float64()) for v in validators]
            fields += [pa.field(f"meta.{k}", pa.string()) for k in meta_keys]
            schema = pa.schema(fields)
            with pq.ParquetWriter(tmp, schema) as writer:
                batch: list[dict[str, Any]] = []
                for e in _events(files, since, until):
                    batch.append(row(e, meta_keys, validators))
                    n += 1
                    if len(batch) >= BATCH:
                        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                        batch = []
                if batch or n == 0:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return n
