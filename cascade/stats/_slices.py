"""``--by``: the dimensions a report is sliced along, and the per-slice counts of rung visits.

A dimension is ``rung``, ``model``, ``reason`` or ``metadata.KEY``. Slices of metadata keys alone are
request figures (``by_metadata``); as soon as ``rung``, ``model`` or ``reason`` is among them they are
rung-visit figures (``slices``). ``reason`` does not split visits: a reason row counts the failing
visits that gave that reason, out of all visits of the rest of its key.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]
ATTEMPT_DIMS = ("rung", "model", "reason")
MISSING = "(missing)"
OTHER = "(other)"


@dataclass(frozen=True)
class By:
    """The ``--by`` dimensions in the order given (duplicates removed)."""

    dims: tuple[str, ...] = ()

    @property
    def meta_keys(self) -> tuple[str, ...]:
        return tuple(d[len("metadata.") :] for d in self.dims if d.startswith("metadata."))

    @property
    def visit_level(self) -> bool:
        """Slices of rung visits (a rung, model or reason dimension) rather than of requests."""
        return any(d in ATTEMPT_DIMS for d in self.dims)

    @property
    def inner(self) -> tuple[str, ...]:
        """The dimensions kept under each rung internally: all but ``rung`` and ``reason``."""
        return tuple(d for d in self.dims if d not in ("rung", "reason"))


def parse_by(values: list[str]) -> By:
    """``["metadata.task,rung", "model"]`` -> By; ValueError naming the bad value."""
    dims: list[str] = []
    for value in values:
        for part in value.split(","):
            d = part.strip()
            ok = d in ATTEMPT_DIMS or (d.startswith("metadata.") and len(d) > len("metadata."))
            if not ok:
                raise ValueError(f"--by: expected rung, reason, model or metadata.KEY (comma-separated), got {part!r}")
            if d not in dims:
                dims.append(d)
    return By(tuple(dims))


def scalar(value: Any) -> str:
    """A metadata value as a slice name: strings as they are, anything else as (short) JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)[:200]


def dim_value(e: Event, dim: str) -> str:
    """The value of one (non-reason) dimension for an event."""
    if dim == "rung":
        return str(e.get("rung"))
    if dim == "model":
        model = e.get("model")
        return model if isinstance(model, str) else MISSING
    meta = e.get("metadata")
    key = dim[len("metadata.") :]
    if not isinstance(meta, dict) or key not in meta:
        return MISSING
    return scalar(meta[key])


def label(key: dict[str, str]) -> str:
    """``{"metadata.task": "chat", "rung": "small"}`` -> ``task=chat rung=small``."""
    return " ".join(f"{d.removeprefix('metadata.')}={v}" for d, v in key.items())


class VisitAgg:
    """Rung visits of one slice: how they ended, what they cost, the reasons of those that failed."""

    __slots__ = ("accepted", "cost", "errors", "left", "reached", "reasons")

    def __init__(self) -> None:
        self.reached = self.accepted = self.left = self.errors = 0
        self.cost = 0.0
        self.reasons: Counter[str] = Counter()

    def add(self, outcome: str, cost: float, reasons: list[str]) -> None:
        if outcome == "reask":  # a re-ask is not the end of a visit
            self.cost += cost
            return
        self.reached += 1
        self.accepted += outcome == "accepted"
        self.left += outcome in ("escalated", "error")
        self.errors += outcome == "error"
        self.cost += cost
        if outcome != "accepted":
            self.reasons.update(reasons)

    def merge(self, other: VisitAgg) -> None:
        self.reached += other.reached
        self.accepted += other.accepted
        self.left += other.left
        self.errors += other.errors
        self.cost += other.cost
        self.reasons.update(other.reasons)


def rows(slices: dict[tuple[str, ...], VisitAgg], by: By, max_reasons: int = 1000) -> list[dict[str, Any]]:
    """The ``slices`` rows: internal (rung, *inner) counts regrouped along ``by.dims`` in their order."""
    grouped: dict[tuple[str, ...], VisitAgg] = {}
    base_dims = [d for d in by.dims if d != "reason"]
    for (rung, *inner), agg in slices.items():
        values = {"rung": rung, **dict(zip(by.inner, inner, strict=True))}
        key = tuple(values[d] for d in base_dims)
        grouped.setdefault(key, VisitAgg()).merge(agg)
    out = []
    for key, agg in sorted(grouped.items()):
        values = dict(zip(base_dims, key, strict=True))
        if "reason" not in by.dims:
            out.append(_row({d: values[d] for d in by.dims}, agg))
            continue
        for reason, n in agg.reasons.most_common(max_reasons):
            full = {d: (reason if d == "reason" else values[d]) for d in by.dims}
            out.append(
                {
                    "key": full,
                    "label": label(full),
                    "visits": agg.reached,
                    "escalated": n,
                    "escalation_rate": None if agg.reached == 0 else round(n / agg.reached, 6),
                }
            )
    return out


def _row(key: dict[str, str], agg: VisitAgg) -> dict[str, Any]:
    return {
        "key": key,
        "label": label(key),
        "visits": agg.reached,
        "accepted": agg.accepted,
        "escalated": agg.left,
        "escalation_rate": None if agg.reached == 0 else round(agg.left / agg.reached, 6),
        "errors": agg.errors,
        "cost_usd": round(agg.cost, 9),
        "reasons": dict(agg.reasons.most_common()),
    }
