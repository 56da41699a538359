"""Reading event fields defensively: a sink gets whatever a processor or a foreign log hands it, and must
count what it can rather than raise."""

from __future__ import annotations

from typing import Any


def number(v: Any) -> float | None:
    """A finite number >= 0, or None (missing, a bool, a string, NaN, negative)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v != float("inf"):
        return float(v)
    return None


def items(v: Any) -> list[Any]:
    """A list field (``reasons``, ``verdicts``), or [] when it is anything else."""
    return v if isinstance(v, list) else []
