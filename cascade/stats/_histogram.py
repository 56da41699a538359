"""Latency percentiles in constant memory: a logarithmic-bucket histogram with a stated relative error.

Bucket ``i`` holds values in ``(gamma**(i-1), gamma**i]`` with ``gamma = (1 + a) / (1 - a)``; a quantile
is reported as the bucket's midpoint ``2 * gamma**i / (gamma + 1)``, which is within relative error
``a`` of the true order statistic (the DDSketch construction). With the default ``a = 0.01`` a latency
of 1 ms to 1e7 ms needs at most ~1,200 buckets, whatever the number of values.
"""

from __future__ import annotations

import math
from typing import Any

RELATIVE_ERROR = 0.01
"""Default relative error of reported quantiles (1%)."""

_TINY = 1e-9  # values at or below this (including 0) are counted as exactly 0


class LogHistogram:
    """Counts of values in logarithmic buckets; exact count, sum, min and max."""

    __slots__ = ("_buckets", "_log_gamma", "_zero", "count", "max", "min", "relative_error", "total")

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        if not 0 < relative_error < 1:
            raise ValueError(f"relative_error: expected a number in (0, 1), got {relative_error!r}")
        self.relative_error = relative_error
        self._log_gamma = math.log((1 + relative_error) / (1 - relative_error))
        self._buckets: dict[int, int] = {}
        self._zero = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            return
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if value <= _TINY:
            self._zero += 1
            return
        i = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[i] = self._buckets.get(i, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (value of rank ``ceil(q * count)``), within the relative error."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = self._zero
        if rank <= seen:
            return 0.0
        gamma = math.exp(self._log_gamma)
        for i in sorted(self._buckets):
            seen += self._buckets[i]
            if seen >= rank:
                estimate = 2 * math.exp(i * self._log_gamma) / (gamma + 1)
                return min(max(estimate, self.min), self.max)
        return self.max  # pragma: no cover - ranks never exceed count

    @property
    def buckets(self) -> int:
        return len(self._buckets) + (1 if self._zero else 0)

    def summary(self) -> dict[str, Any]:
        """``{count, p50, p95, p99, mean, max}``; ``None`` figures when there are no values."""
        empty = self.count == 0
        return {
            "count": self.count,
            "p50": _r(self.quantile(0.50)),
            "p95": _r(self.quantile(0.95)),
            "p99": _r(self.quantile(0.99)),
            "mean": None if empty else _r(self.total / self.count),
            "max": None if empty else _r(self.max),
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
