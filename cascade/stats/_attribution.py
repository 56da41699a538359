"""Drift says where: a moved escalation rate split into the slices that moved it, ranked.

A rate ``R = X / N`` over a window is the sum over slices ``s`` of ``X_s / N``, so its change splits
exactly into one contribution per slice, ``X_s' / N' - X_s / N`` (in rate points; they add up to the
change of ``R``): a slice contributes by failing more often, or by being a larger part of the traffic.
Each slice also gets its own two-proportion test of ``X_s / N_s`` between the windows, so "task=chat
39.5% -> 68.7%, p<0.0001" is a tested claim and the other slices are called flat when they are not
significant. Reasons are ranked the same way (visits failing with the reason, out of all visits; an
attempt with two reasons counts for both, so reason contributions can add up to more than the change).

The scopes: the request escalation rate (``(all)``), sliced by the ``--by`` metadata values, and each
rung's escalation rate per visit, sliced by the ``--by`` values (metadata, model) and by reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ._aggregate import Stats
from ._drift import ALL, Thresholds, two_proportion
from ._slices import VisitAgg, label

MAX_SLICES_SHOWN = 10


def _rate(x: int, n: int) -> float | None:
    return None if n == 0 else x / n


def _slice(
    dim: str,
    key: dict[str, str],
    a: tuple[int, int],
    b: tuple[int, int],
    totals: tuple[int, int],
    change: float,
    th: Thresholds,
) -> dict[str, Any]:
    (x1, n1), (x2, n2) = a, b
    r1, r2 = _rate(x1, n1), _rate(x2, n2)
    p = two_proportion(x1, n1, x2, n2)
    contribution = (x2 / totals[1] if totals[1] else 0.0) - (x1 / totals[0] if totals[0] else 0.0)
    rate_effect, mix_effect = _split(a, b, totals)
    moved = r1 is not None and r2 is not None and abs(r2 - r1) >= th.rate
    enough = min(n1, n2) >= th.min_count
    significant = enough and moved and p < th.alpha
    return {
        "dim": dim,
        "key": key,
        "label": label(key),
        "previous": None if r1 is None else round(r1, 6),
        "current": None if r2 is None else round(r2, 6),
        "n_previous": n1,
        "n_current": n2,
        "p_value": round(p, 6),
        "contribution": round(contribution, 6),
        "share_of_change": None if abs(change) < 1e-12 else round(contribution / change, 6),
        "rate_effect": round(rate_effect, 6),
        "mix_effect": round(mix_effect, 6),
        "significant": significant,
        "note": "moved" if significant else "insufficient data" if not enough else "flat",
    }


def _split(a: tuple[int, int], b: tuple[int, int], totals: tuple[int, int]) -> tuple[float, float]:
    """The contribution ``w2 r2 - w1 r1`` as ``(rate effect, mix effect)``: ``mean(w) * (r2 - r1)``, the
    slice failing more or less often, plus ``mean(r) * (w2 - w1)``, the slice's share of the traffic
    growing or shrinking. The two add up to the contribution exactly."""
    (x1, n1), (x2, n2) = a, b
    w1 = n1 / totals[0] if totals[0] else 0.0
    w2 = n2 / totals[1] if totals[1] else 0.0
    r1 = x1 / n1 if n1 else None
    r2 = x2 / n2 if n2 else None
    before = r1 if r1 is not None else r2  # a slice absent from one window: all of its contribution is mix
    after = r2 if r2 is not None else r1
    if before is None or after is None:
        return 0.0, 0.0
    return (w1 + w2) / 2 * (after - before), (before + after) / 2 * (w2 - w1)


def _visit_slices(stats: Stats, rung: str) -> dict[tuple[str, ...], VisitAgg]:
    return {tuple(k[1:]): v for k, v in stats.slices.items() if k[0] == rung}


def _rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-abs(r["contribution"]), r["label"]))[:MAX_SLICES_SHOWN]


def explain(previous: Stats, current: Stats, th: Thresholds) -> list[dict[str, Any]]:
    """One explanation per scope (``(all)``, then each rung), drifted scopes first."""
    out = []
    by = current.by
    keys = by.meta_keys
    pa, ca = previous.total, current.total
    scopes: list[tuple[str, tuple[int, int], tuple[int, int], list[Any], list[Any]]] = []
    all_slices = []
    if keys:
        groups = sorted(set(previous.groups) | set(current.groups))
        for g in groups:
            ga, gb = previous.groups.get(g), current.groups.get(g)
            values = (current.group_values.get(g) or previous.group_values.get(g)) or {}
            all_slices.append(
                (
                    "+".join(f"metadata.{k}" for k in keys),
                    {f"metadata.{k}": v for k, v in values.items()},
                    (ga.escalated_requests, ga.requests) if ga else (0, 0),
                    (gb.escalated_requests, gb.requests) if gb else (0, 0),
                )
            )
    scopes.append((ALL, (pa.escalated_requests, pa.requests), (ca.escalated_requests, ca.requests), all_slices, []))
    for rung in dict.fromkeys([*previous.rung_order(), *current.rung_order()]):
        ra, rb = previous.rungs.get(rung), current.rungs.get(rung)
        a = (ra.left, ra.reached) if ra else (0, 0)
        b = (rb.left, rb.reached) if rb else (0, 0)
        inner = []
        if by.inner:
            sa, sb = _visit_slices(previous, rung), _visit_slices(current, rung)
            for k in sorted(set(sa) | set(sb)):
                va, vb = sa.get(k), sb.get(k)
                inner.append(
                    (
                        "+".join(by.inner),
                        dict(zip(by.inner, k, strict=True)),
                        (va.left, va.reached) if va else (0, 0),
                        (vb.left, vb.reached) if vb else (0, 0),
                    )
                )
        reasons_a: Counter[str] = ra.reasons if ra else Counter()
        reasons_b: Counter[str] = rb.reasons if rb else Counter()
        reasons = [
            ("reason", {"reason": r}, (reasons_a.get(r, 0), a[1]), (reasons_b.get(r, 0), b[1]))
            for r in sorted(set(reasons_a) | set(reasons_b))
        ]
        scopes.append((rung, a, b, inner, reasons))
    for scope, a, b, slices, reasons in scopes:
        r1, r2 = _rate(*a), _rate(*b)
        change = 0.0 if r1 is None or r2 is None else r2 - r1
        p = two_proportion(a[0], a[1], b[0], b[1])
        enough = min(a[1], b[1]) >= th.min_count
        flagged = enough and abs(change) >= th.rate and p < th.alpha
        totals = (a[1], b[1])
        ranked = _rank([_slice(d, k, sa, sb, totals, change, th) for d, k, sa, sb in slices])
        ranked_reasons = _rank([_slice(d, k, sa, sb, totals, change, th) for d, k, sa, sb in reasons])
        e = {
            "scope": scope,
            "metric": "escalation_rate",
            "unit": "request" if scope == ALL else "visit",
            "previous": None if r1 is None else round(r1, 6),
            "current": None if r2 is None else round(r2, 6),
            "change": round(change, 6),
            "p_value": round(p, 6),
            "n_previous": a[1],
            "n_current": b[1],
            "flagged": flagged,
            "slices": ranked,
            "reasons": ranked_reasons,
        }
        e["summary"] = summary(e)
        out.append(e)
    return sorted(out, key=lambda e: (not e["flagged"], e["p_value"] if e["flagged"] else 1.0))


def p_text(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.4f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def summary(e: dict[str, Any]) -> str:
    """``small escalation 30.9% -> 48.6%, p<0.0001; of which task=chat 39.5% -> 68.7% (p<0.0001, +14.9 pp
    of the change), other tasks flat; reasons: schema_invalid +6.1 pp``."""
    head = f"{e['scope']} escalation {_pct(e['previous'])} -> {_pct(e['current'])}, {p_text(e['p_value'])}"
    moved = [s for s in e["slices"] if s["significant"]]
    parts = [head]
    if moved:
        text = ", ".join(
            f"{s['label']} {_pct(s['previous'])} -> {_pct(s['current'])} ({p_text(s['p_value'])}, "
            f"{100 * s['contribution']:+.1f} pp of the change)"
            for s in moved[:3]
        )
        rest = len(e["slices"]) - len(moved)
        dims = sorted({k.removeprefix("metadata.") for s in e["slices"] for k in s["key"]})
        parts.append(f"of which {text}" + (f", other {'/'.join(dims)} values flat" if rest > 0 else ""))
    elif e["slices"]:
        parts.append("no single slice moved significantly")
    reasons = [s for s in e["reasons"] if s["significant"]]
    if reasons:
        parts.append(
            "reasons: " + ", ".join(f"{s['key']['reason']} {100 * s['contribution']:+.1f} pp" for s in reasons[:3])
        )
    return "; ".join(parts)
