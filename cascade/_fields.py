"""Reading event fields defensively: a sink gets whatever a processor or a foreign log hands it, and must
count what it can rather than raise."""

from __future__ import annotations

import math
from typing import Any


def number(v: Any) -> float | None:
    """A finite number >= 0, or None (missing, a bool, a string, NaN, infinite, too large, negative)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:  # an int past float's range
        return None
    return f if math.isfinite(f) and f >= 0 else None


def items(v: Any) -> list[Any]:
    """A list field (``reasons``, ``verdicts``), or [] when it is anything else."""
    return v if isinstance(v, list) else []
