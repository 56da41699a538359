"""Validator score distributions in constant memory, and the two-sample test that says when one moved.

Scores are what validators put in a verdict's ``score`` (a confidence, an agreement share): mostly in
[0, 1]. They are counted in ``BINS`` equal bins over [0, 1]; a quantile is its bin's midpoint, so it is
within ``0.5 / BINS`` of the true order statistic. Scores outside [0, 1] are counted in the first or last
bin, and the exact minimum and maximum are kept, so nothing is dropped.
"""

from __future__ import annotations

import math
from typing import Any

BINS = 200
RESOLUTION = 0.5 / BINS
"""Largest distance between a reported quantile and the true one (scores in [0, 1])."""
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


class ScoreHistogram:
    """Counts of scores in equal bins over [0, 1]; exact count, sum, min and max."""

    __slots__ = ("bins", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.bins = [0] * BINS
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, score: float) -> None:
        if not math.isfinite(score):
            return
        self.count += 1
        self.total += score
        self.min = min(self.min, score)
        self.max = max(self.max, score)
        self.bins[min(BINS - 1, max(0, int(score * BINS)))] += 1

    def merge(self, other: ScoreHistogram) -> None:
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile (the value of rank ``ceil(q * count)``), within ``RESOLUTION``."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return float(min(max((i + 0.5) / BINS, self.min), self.max))
        return float(self.max)  # pragma: no cover - ranks never exceed count

    def summary(self) -> dict[str, Any]:
        """``{count, p10, p25, p50, p75, p90, mean, min, max}``; None figures when empty."""
        out: dict[str, Any] = {"count": self.count}
        for q in QUANTILES:
            v = self.quantile(q)
            out[f"p{round(q * 100)}"] = None if v is None else round(v, 4)
        empty = self.count == 0
        out["mean"] = None if empty else round(self.total / self.count, 6)
        out["min"] = None if empty else round(self.min, 6)
        out["max"] = None if empty else round(self.max, 6)
        return out


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (the two-sample KS test's asymptotic p-value)."""
    if lam < 0.2:
        return 1.0
    total = sum((1.0 if k % 2 else -1.0) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2 * total))


def ks_test(a: ScoreHistogram, b: ScoreHistogram) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov on the binned scores: ``(D, p)``; D is the largest gap between the
    two cumulative distributions (0 = same, 1 = disjoint). Binning can only lower D (a conservative test)."""
    if a.count == 0 or b.count == 0:
        return 0.0, 1.0
    ca = cb = 0
    d = 0.0
    for x, y in zip(a.bins, b.bins, strict=True):
        ca += x
        cb += y
        d = max(d, abs(ca / a.count - cb / b.count))
    ne = a.count * b.count / (a.count + b.count)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    return d, kolmogorov_sf(lam)
