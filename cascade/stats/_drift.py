"""Drift: compare the latest window of a log with the one before it, rung by rung.

Each figure is flagged only when it moved by more than its threshold AND the move is unlikely to be
noise (p-value below ``alpha``), so that small windows do not raise false alarms:

* escalation rate: two-proportion z-test (pooled);
* reason mix: total variation distance between the windows' reason shares, with a chi-square test of
  homogeneity (Wilson-Hilferty approximation of the chi-square tail for 3+ degrees of freedom);
* cost: mean cost per attempt (per request for the ``(all)`` row), Welch z-test on the means;
* validator scores (per rung and validator): the Kolmogorov-Smirnov distance between the windows' score
  distributions, with its two-sample test: scores sliding down before the escalation rate moves is the
  silent-degradation signal.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from ._aggregate import AttemptAgg, RequestAgg, Stats
from ._scores import ScoreHistogram, ks_test

ALL = "(all)"


@dataclass(frozen=True)
class Window:
    """``kind="time"``: the last ``size`` seconds; ``kind="requests"``: the last ``size`` requests."""

    kind: Literal["time", "requests"]
    size: float
    text: str


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(text: str) -> Window:
    """``30m``, ``1h``, ``1d``, ``90s``, ``2w`` (time) or ``1000r`` (requests)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdwr])\s*", text or "")
    if not m:
        raise ValueError(
            f"--compare: expected a window like 30m, 1h, 1d, 90s, 2w (time) or 1000r (requests), got {text!r}"
        )
    amount, unit = float(m.group(1)), m.group(2)
    if amount <= 0:
        raise ValueError(f"--compare: the window must be positive, got {text!r}")
    if unit == "r":
        if amount != int(amount):
            raise ValueError(f"--compare: a request window needs a whole number, got {text!r}")
        return Window("requests", amount, text.strip())
    return Window("time", amount * _UNITS[unit], text.strip())


@dataclass(frozen=True)
class Thresholds:
    rate: float = 0.05
    """Absolute change of an escalation rate (0.05 = 5 percentage points)."""
    tvd: float = 0.2
    """Total variation distance between reason mixes (0 = same mix, 1 = disjoint)."""
    cost: float = 0.25
    """Relative change of mean cost (0.25 = 25%)."""
    alpha: float = 0.01
    """A move is significant when its p-value is below this."""
    score: float = 0.1
    """Kolmogorov-Smirnov distance between score distributions (0 = same, 1 = disjoint)."""
    min_count: int = 20
    """Fewer observations than this in either window: reported, never flagged."""


def normal_sf2(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2))


def chi2_sf(x: float, df: int) -> float:
    """Upper tail of the chi-square distribution (exact for 1 and 2 degrees of freedom)."""
    if df <= 0 or x <= 0:
        return 1.0
    if df == 1:
        return math.erfc(math.sqrt(x / 2))
    if df == 2:
        return math.exp(-x / 2)
    z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> float:
    """p-value of the pooled two-proportion z-test."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return normal_sf2((x2 / n2 - x1 / n1) / se)


def tvd_and_p(a: Counter[str], b: Counter[str]) -> tuple[float, float]:
    """Total variation distance of the two mixes, and the chi-square homogeneity p-value."""
    na, nb = sum(a.values()), sum(b.values())
    if na == 0 or nb == 0:
        return 0.0, 1.0
    keys = [k for k in set(a) | set(b) if a[k] + b[k] > 0]
    tvd = 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in keys)
    stat = 0.0
    for k in keys:
        col = a[k] + b[k]
        for obs, n in ((a[k], na), (b[k], nb)):
            exp = col * n / (na + nb)
            stat += (obs - exp) ** 2 / exp
    return tvd, chi2_sf(stat, len(keys) - 1)


def _variance(n: int, mean: float, sum_sq: float) -> float:
    """Sample variance from a sum of squares; float cancellation below 1e-9 of the mean squared is 0."""
    v = (sum_sq - n * mean * mean) / (n - 1)
    return 0.0 if v <= 1e-9 * mean * mean else v


def welch(n1: int, s1: float, q1: float, n2: int, s2: float, q2: float) -> float:
    """p-value (normal approximation) that two means differ, from counts, sums and sums of squares."""
    if n1 < 2 or n2 < 2:
        return 1.0
    m1, m2 = s1 / n1, s2 / n2
    v1 = _variance(n1, m1, q1)
    v2 = _variance(n2, m2, q2)
    se = math.sqrt(v1 / n1 + v2 / n2)
    if se == 0:  # constant values in both windows: they differ or they do not
        return 1.0 if math.isclose(m1, m2, rel_tol=1e-9, abs_tol=1e-15) else 0.0
    return normal_sf2((m2 - m1) / se)


def _finding(
    rung: str,
    metric: str,
    prev: float | None,
    cur: float | None,
    change: float | None,
    p: float,
    threshold: float,
    n_prev: int,
    n_cur: int,
    th: Thresholds,
    moved: bool,
) -> dict[str, Any]:
    enough = min(n_prev, n_cur) >= th.min_count
    flagged = enough and moved and p < th.alpha
    note = "insufficient data" if not enough else "drift" if flagged else "moved, not significant" if moved else "ok"
    return {
        "rung": rung,
        "metric": metric,
        "previous": None if prev is None else round(prev, 9),
        "current": None if cur is None else round(cur, 9),
        "change": None if change is None else round(change, 6),
        "threshold": threshold,
        "p_value": round(p, 6),
        "n_previous": n_prev,
        "n_current": n_cur,
        "flagged": flagged,
        "note": note,
    }


def _rate_finding(rung: str, x1: int, n1: int, x2: int, n2: int, th: Thresholds) -> dict[str, Any]:
    r1 = x1 / n1 if n1 else None
    r2 = x2 / n2 if n2 else None
    change = None if r1 is None or r2 is None else r2 - r1
    moved = change is not None and abs(change) >= th.rate
    return _finding(rung, "escalation_rate", r1, r2, change, two_proportion(x1, n1, x2, n2), th.rate, n1, n2, th, moved)


def _cost_finding(
    rung: str, metric: str, a: tuple[int, float, float], b: tuple[int, float, float], th: Thresholds
) -> dict[str, Any]:
    (n1, s1, q1), (n2, s2, q2) = a, b
    m1 = s1 / n1 if n1 else None
    m2 = s2 / n2 if n2 else None
    change = None
    if m1 is not None and m2 is not None:
        change = (m2 - m1) / m1 if m1 > 0 else (0.0 if m2 == 0 else math.inf)
    moved = change is not None and abs(change) >= th.cost
    if change is not None and math.isinf(change):
        change = None
    return _finding(rung, metric, m1, m2, change, welch(n1, s1, q1, n2, s2, q2), th.cost, n1, n2, th, moved)


def compare(previous: Stats, current: Stats, th: Thresholds) -> list[dict[str, Any]]:
    """One finding per (rung, metric), the ``(all)`` rows first."""
    p_all, c_all = previous.total, current.total
    out = [
        _rate_finding(ALL, p_all.escalated_requests, p_all.requests, c_all.escalated_requests, c_all.requests, th),
        _mix_finding(ALL, previous.reasons, current.reasons, th),
        _cost_finding(ALL, "cost_per_request", _req_cost(p_all), _req_cost(c_all), th),
    ]
    names = list(dict.fromkeys([*previous.rung_order(), *current.rung_order()]))
    for name in names:
        a, b = previous.rungs.get(name, AttemptAgg()), current.rungs.get(name, AttemptAgg())
        out.append(_rate_finding(name, a.left, a.reached, b.left, b.reached, th))
        out.append(_mix_finding(name, a.reasons, b.reasons, th))
        out.append(_cost_finding(name, "cost_per_attempt", _att_cost(a), _att_cost(b), th))
        for validator in sorted(set(a.scores) | set(b.scores)):
            out.append(_score_finding(name, validator, a.scores.get(validator), b.scores.get(validator), th))
    return out


def _score_finding(
    rung: str, validator: str, a: ScoreHistogram | None, b: ScoreHistogram | None, th: Thresholds
) -> dict[str, Any]:
    """The median score before and after, and the KS distance of the whole distributions as the change."""
    a, b = a or ScoreHistogram(), b or ScoreHistogram()
    d, p = ks_test(a, b)
    both = a.count > 0 and b.count > 0
    f = _finding(rung, "score", a.quantile(0.5), b.quantile(0.5), d if both else None, p, th.score,
                 a.count, b.count, th, both and d >= th.score)  # fmt: skip
    f["validator"] = validator
    return f


def _mix_finding(rung: str, a: Counter[str], b: Counter[str], th: Thresholds) -> dict[str, Any]:
    tvd, p = tvd_and_p(a, b)
    n1, n2 = sum(a.values()), sum(b.values())
    f = _finding(rung, "reason_mix", None, None, tvd if n1 and n2 else None, p, th.tvd, n1, n2, th, tvd >= th.tvd)
    f["previous"] = _shares(a)
    f["current"] = _shares(b)
    return f


def _shares(c: Counter[str]) -> dict[str, float]:
    n = sum(c.values())
    return {k: round(v / n, 6) for k, v in c.most_common()} if n else {}


def _req_cost(r: RequestAgg) -> tuple[int, float, float]:
    return r.requests, r.cost, r.cost_sq


def _att_cost(a: AttemptAgg) -> tuple[int, float, float]:
    return a.attempts, a.cost, a.cost_sq
