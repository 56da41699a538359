"""Escalation rate over time, for ``--plot`` and ``--html``: buckets sized to the data, 95% bands, gaps.

Events are counted in fine buckets (at most ``FINE_BUCKETS`` over the log's span, kept sparse: memory
grows with the busy buckets, not the events), then regrouped into buckets of a round width chosen from
the *active* time (the busy fine buckets), so a day-long pause between two runs neither swallows the
runs in a few buckets nor is drawn as a line: a series is joined only between adjacent busy buckets,
and runs further apart than ``BREAK_BUCKETS`` buckets are separate segments of the time axis.

What a series counts follows ``--by`` (see :mod:`._slices`): per rung by default (escalated or errored
visits out of visits), per metadata value for metadata-only slices (escalated requests out of requests),
and per ``--by`` key otherwise (a ``reason`` series counts the visits failing with it).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

from ._slices import By, dim_value

Event = dict[str, Any]
FINE_BUCKETS = 4_000
TARGET_BUCKETS = 40
MIN_PER_BUCKET = 20
"""Average visits per series per bucket the width aims for (fewer: wider buckets, narrower bands)."""
MAX_KEYS = 50
"""Series counted; the busiest ``MAX_SERIES`` are drawn."""
MAX_SERIES = 8
BREAK_BUCKETS = 3
NICE_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
Z95 = 1.959964


def nice_width(seconds: float) -> float:
    """The smallest round bucket width (1 s, 2 s, 5 s, ... 1 h, 2 h, ... 1 d, 1 w, then whole weeks) >= seconds."""
    for w in NICE_SECONDS:
        if w >= seconds:
            return float(w)
    return float(604800 * math.ceil(seconds / 604800))


PAUSE_SHARE = 0.05
"""A silence longer than this share of the log's span is a pause between runs, not active time."""


def active_seconds(busy: list[int], fine: float) -> float:
    """Time the log was active: the gaps between busy fine buckets, except pauses (a gap longer than
    ``PAUSE_SHARE`` of the span, or ten fine buckets when that is longer)."""
    pause = max(PAUSE_SHARE * (busy[-1] - busy[0] + 1), 10)
    return fine * (1 + sum(min(b - a, 1) if b - a > pause else b - a for a, b in pairwise(busy)))


def wilson(x: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion x/n (sensible at 0, 1 and small n)."""
    if n == 0:
        return 0.0, 1.0
    p = x / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class Timeline:
    """Fed every event of the report's range with :meth:`add`; :meth:`build` gives the JSON."""

    def __init__(self, start: float, end: float, by: By | None = None) -> None:
        self.by = by or By()
        self.start = start
        self.fine = nice_width(max(end - start, 1.0) / FINE_BUCKETS)
        self.unit = "visit" if not self.by.dims or self.by.visit_level else "request"
        self.counts: dict[tuple[str, ...], dict[int, list[int]]] = {}
        """series key -> fine bucket -> [n, x]; for a reason series only x (n is its base's)."""

    def _bucket(self, e: Event) -> int:
        return int((float(e["ts"]) - self.start) // self.fine)

    def _count(self, key: tuple[str, ...], i: int, n: int, x: int) -> None:
        buckets = self.counts.get(key)
        if buckets is None:
            if len(self.counts) >= MAX_KEYS:
                return
            buckets = self.counts[key] = {}
        cell = buckets.setdefault(i, [0, 0])
        cell[0] += n
        cell[1] += x

    def add(self, e: Event) -> None:
        i = self._bucket(e)
        if self.unit == "request":
            if e["event"] == "request":
                key = tuple(dim_value(e, d) for d in self.by.dims)
                self._count(key, i, 1, int((e.get("escalations") or 0) > 0))
            return
        if e["event"] != "attempt" or e["outcome"] == "reask":
            return
        dims = self.by.dims or ("rung",)
        left = e["outcome"] in ("escalated", "error")
        if "reason" not in dims:
            self._count(tuple(dim_value(e, d) for d in dims), i, 1, int(left))
            return
        base = tuple(dim_value(e, d) for d in dims if d != "reason")
        self._count(("", *base), i, 1, 0)  # the denominator of every reason series of this base
        if e["outcome"] != "accepted":
            pos = dims.index("reason")
            for r in dict.fromkeys(x for x in e.get("reasons") or ["unknown"] if isinstance(x, str)):
                self._count((*base[:pos], r, *base[pos:]), i, 0, 1)

    def _denominator(self, key: tuple[str, ...]) -> dict[int, list[int]] | None:
        dims = self.by.dims
        if "reason" not in dims or key[0:1] == ("",):
            return None
        pos = dims.index("reason")
        return self.counts.get(("", *key[:pos], *key[pos + 1 :]), {})

    def build(self) -> dict[str, Any]:
        """``{bucket_s, unit, dims, segments: [[start, end]], series: [{key, label, n, points}]}``; each
        point ``{t, n, x, rate, lo, hi}`` (t = bucket start, unix seconds; lo/hi the 95% Wilson band)."""
        dims = self.by.dims or ("rung",)
        series: dict[tuple[str, ...], dict[int, list[int]]] = {}
        for key, buckets in self.counts.items():
            if key[0:1] == ("",) and "reason" in dims:
                continue
            den = self._denominator(key)
            if den is None:
                series[key] = buckets
            else:
                series[key] = {i: [den.get(i, [0, 0])[0], buckets.get(i, [0, 0])[1]] for i in den}
        busy = sorted({i for b in series.values() for i, (n, _x) in b.items() if n})
        total = sum(n for b in series.values() for n, _x in b.values())
        if not busy:
            return {"bucket_s": None, "unit": self.unit, "dims": list(dims), "segments": [], "series": []}

        def volume(k: tuple[str, ...]) -> tuple[int, int]:  # busiest first; a base's reasons by their count
            return (-sum(n for n, _x in series[k].values()), -sum(x for _n, x in series[k].values()))

        chosen = sorted(series, key=volume)[:MAX_SERIES]
        active = active_seconds(busy, self.fine)
        per_series = total / max(1, len(series))
        target = max(active / TARGET_BUCKETS, active * MIN_PER_BUCKET / max(per_series, 1.0))
        width = nice_width(min(max(target, self.fine), max(self.fine, active / 8)))
        origin = math.floor(self.start / width) * width

        def coarse(i: int) -> int:
            return int((self.start + i * self.fine - origin) // width)

        out_series = []
        for key in chosen:
            merged: dict[int, list[int]] = {}
            for i, (n, x) in series[key].items():
                cell = merged.setdefault(coarse(i), [0, 0])
                cell[0] += n
                cell[1] += x
            points = []
            for j in sorted(merged):
                n, x = merged[j]
                if n == 0:
                    continue
                lo, hi = wilson(x, n)
                t = origin + j * width
                points.append({"t": t, "n": n, "x": x, "rate": round(x / n, 6), "lo": round(lo, 6), "hi": round(hi, 6)})
            values = dict(zip(dims, key, strict=True))
            name = " ".join(f"{d.removeprefix('metadata.')}={v}" for d, v in values.items())
            out_series.append({"key": values, "label": name, "n": sum(p["n"] for p in points), "points": points})
        cells = sorted({coarse(i) for i in busy})
        segments: list[list[float]] = []
        for j in cells:
            if segments and j - round((segments[-1][1] - origin) / width) < BREAK_BUCKETS:
                segments[-1][1] = origin + (j + 1) * width
            else:
                segments.append([origin + j * width, origin + (j + 1) * width])
        return {"bucket_s": width, "unit": self.unit, "dims": list(dims), "segments": segments, "series": out_series}


def runs(points: list[dict[str, Any]], width: float) -> list[list[dict[str, Any]]]:
    """A series' points cut where a bucket is missing: each run is drawn as one line (and band)."""
    out: list[list[dict[str, Any]]] = []
    for p in points:
        if out and p["t"] - out[-1][-1]["t"] <= width * 1.001:
            out[-1].append(p)
        else:
            out.append([p])
    return out
