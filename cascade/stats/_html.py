"""``--html report.html``: the stats report as one self-contained page, drawn on the server side.

No script and nothing fetched: plain HTML, inline CSS and SVG charts, behind a Content-Security-Policy
that forbids loading anything, so the file views the same offline, from a mail attachment or a CI
artifact. Every figure that is also in ``--json`` carries ``data-json="<path>"`` (``by_rung.small.cost_usd``)
so a test (or a scraper) can check that the page shows what the JSON says. Text from the log is escaped.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from typing import Any

from ._attribution import p_text
from ._render import clean, pct, score, usd
from ._timeline import NICE_SECONDS, runs

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:19px}.card span{color:#666;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}.l{text-align:left}
.drift{color:#b00;font-weight:600}.ok{color:#666}.note{color:#666;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;color:#135}
.summary{background:#fff4f4;border-left:3px solid #b00;padding:6px 10px;margin:6px 0}
svg text{font:11px system-ui,sans-serif;fill:#333}
"""


def _e(text: object) -> str:
    return html.escape(clean(text), quote=True)


def _v(path: str, text: str) -> str:
    """A figure shown on the page and found in the JSON at ``path``."""
    return f'<span data-json="{_e(path)}">{_e(text)}</span>'


def _when(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime(fmt)


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Rows of already-escaped cells; the first ``left`` columns are text (left-aligned)."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _k(name: str) -> str:
    """A JSON key inside a ``data-json`` path (dots would split it)."""
    return name.replace("\\", "\\\\").replace(".", "\\.")


def cards(d: dict[str, Any]) -> str:
    items = [
        ("requests", f"{d['requests']:,}", "requests"),
        ("accepted_rate", pct(d["accepted_rate"]), "accepted"),
        ("escalated_requests.rate", pct(d["escalated_requests"]["rate"]), "escalated requests"),
        ("final_failures.count", f"{d['final_failures']['count']:,}", "final failures"),
        ("cost_usd", usd(d["cost_usd"]), "cost"),
        ("baseline_top_cost_usd", usd(d["baseline_top_cost_usd"]), "all on top rung (estimate)"),
        ("savings_pct", "-" if d["savings_pct"] is None else f"{d['savings_pct']:.1f}%", "savings vs top rung"),
        ("errors.rate", pct(d["errors"]["rate"]), "errors per attempt"),
    ]
    return (
        '<div class="cards">'
        + "".join(f"<div class='card'><b>{_v(p, t)}</b><span>{_e(lab)}</span></div>" for p, t, lab in items)
        + "</div>"
    )


def _tick_step(span: float, slots: int) -> float:
    for w in NICE_SECONDS:
        if span / w <= slots:
            return float(w)
    return float(NICE_SECONDS[-1] * math.ceil(span / NICE_SECONDS[-1] / slots))


def _gap_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} gap"
    return f"{seconds:.0f} s gap"


def timeline_svg(d: dict[str, Any], key: str = "timeline") -> str:
    tl = d.get(key)
    if not tl or not tl["series"]:
        return "<p class='note'>No events to draw over time.</p>"
    w, h, left, right, top, bottom, gap = 960, 300, 46, 12, 12, 46, 34
    segs = tl["segments"]
    spans = [max(b - a, 1.0) for a, b in segs]
    room = w - left - right - gap * (len(segs) - 1)
    shares = [max(s / sum(spans), 0.1) for s in spans]
    widths = [room * s / sum(shares) for s in shares]
    x0s = [left + sum(widths[:i]) + gap * i for i in range(len(segs))]

    def x(t: float) -> float | None:
        for (a, b), x0, sw in zip(segs, x0s, widths, strict=True):
            if a <= t <= b:
                return float(x0 + (t - a) / max(b - a, 1.0) * sw)
        return None

    def y(rate: float) -> float:
        return top + (1 - rate) * (h - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 22 * ((len(tl["series"]) + 3) // 4)}" '
        f'role="img" aria-label="escalation rate over time">'
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        yy = y(frac)
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{100 * frac:.0f}%</text>')
    cmp = d.get("compare")
    if cmp and cmp.get("previous") and cmp.get("current"):
        for win, color in ((cmp["previous"], "#999"), (cmp["current"], "#ff7f0e")):
            for (a, b), x0, sw in zip(segs, x0s, widths, strict=True):
                lo, hi = max(a, win["start"]), min(b, win["end"])
                if lo < hi:
                    xa = x0 + (lo - a) / max(b - a, 1.0) * sw
                    xb = x0 + (hi - a) / max(b - a, 1.0) * sw
                    parts.append(
                        f'<rect x="{xa:.1f}" y="{top}" width="{xb - xa:.1f}" height="{h - top - bottom}" '
                        f'fill="{color}" opacity="0.08"/>'
                    )
    for i, ((a, b), x0, sw) in enumerate(zip(segs, x0s, widths, strict=True)):
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{sw:.1f}" height="{h - top - bottom}" fill="none" stroke="#ccc"/>'
        )
        step = _tick_step(b - a, max(1, int(sw // 90)))
        t = math.ceil(a / step) * step
        fmt = "%H:%M" if b - a < 86400 * 2 else "%m-%d"
        while t <= b:
            xx = x0 + (t - a) / max(b - a, 1.0) * sw
            if i < len(segs) - 1 and xx > x0 + sw - 24:  # would run into the next panel's first label
                break
            parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{h - bottom}" y2="{h - bottom + 4}" stroke="#999"/>')
            parts.append(f'<text x="{xx:.1f}" y="{h - bottom + 16}" text-anchor="middle">{_when(t, fmt)}</text>')
            t += step
        parts.append(f'<text x="{x0:.1f}" y="{h - bottom + 32}">{_e(_when(a, "%Y-%m-%d"))}</text>')
        if i > 0:
            gx = x0 - gap / 2
            parts.append(f'<text x="{gx:.1f}" y="{top + 14}" text-anchor="middle" class="gap">//</text>')
            parts.append(
                f'<text x="{gx:.1f}" y="{top + 28}" text-anchor="middle" font-size="9">'
                f"{_e(_gap_text(a - segs[i - 1][1]))}</text>"
            )
    width = tl["bucket_s"]
    for k, s in enumerate(tl["series"]):
        color = PALETTE[k % len(PALETTE)]
        for run in runs(s["points"], width):
            xs = [x(p["t"] + width / 2) for p in run]
            pts = [(xx, p) for xx, p in zip(xs, run, strict=True) if xx is not None]
            if not pts:
                continue
            band = [f"{xx:.1f},{y(p['hi']):.1f}" for xx, p in pts] + [
                f"{xx:.1f},{y(p['lo']):.1f}" for xx, p in reversed(pts)
            ]
            parts.append(f'<polygon points="{" ".join(band)}" fill="{color}" opacity="0.15" class="band"/>')
            line = " ".join(f"{xx:.1f},{y(p['rate']):.1f}" for xx, p in pts)
            if len(pts) > 1:
                parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6" class="run"/>')
            for xx, p in pts:
                parts.append(
                    f'<circle cx="{xx:.1f}" cy="{y(p["rate"]):.1f}" r="2" fill="{color}">'
                    f"<title>{_e(s['label'])}: {p['x']}/{p['n']} ({pct(p['rate'])}), 95% "
                    f"{pct(p['lo'])}-{pct(p['hi'])}</title></circle>"
                )
    for k, s in enumerate(tl["series"]):
        lx, ly = left + (k % 4) * 230, h + 4 + 22 * (k // 4)
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{ly + 10}">{_e(s["label"])} (n={s["n"]:,})</text>')
    parts.append("</svg>")
    unit = (
        "escalated requests out of requests" if tl["unit"] == "request" else "escalated or errored visits out of visits"
    )
    return (
        "".join(parts)
        + f"<p class='note'>{_e(unit)}, by {_e(', '.join(tl['dims']))}; buckets of {_e(_dur(width))}; shaded: 95% "
        "Wilson interval; a line joins adjacent buckets only; separate panels are runs with a pause between them."
        + (" Grey and orange backgrounds: the compared windows." if cmp else "")
        + "</p>"
    )


def _dur(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def cost_svg(d: dict[str, Any]) -> str:
    w, bar, left = 960, 26, 170
    total, baseline = d["cost_usd"], d["baseline_top_cost_usd"]
    scale = (w - left - 20) / max(total, baseline, 1e-12)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{3 * bar + 44}" role="img" aria-label="cost">'
    ]
    parts.append(f'<text x="0" y="{bar * 0.7 + 4:.0f}">cascade</text>')
    xx = float(left)
    for k, (name, g) in enumerate(d["by_rung"].items()):
        bw = g["cost_usd"] * scale
        parts.append(
            f'<rect x="{xx:.1f}" y="4" width="{bw:.1f}" height="{bar}" fill="{PALETTE[k % len(PALETTE)]}">'
            f"<title>{_e(name)}: {usd(g['cost_usd'])}</title></rect>"
        )
        if bw > 60:
            parts.append(f'<text x="{xx + 4:.1f}" y="{4 + bar * 0.7:.0f}" style="fill:#fff">{_e(name)}</text>')
        xx += bw
    parts.append(f'<text x="{xx + 6:.1f}" y="{4 + bar * 0.7:.0f}">{usd(total)}</text>')
    for k, name in enumerate(d["by_rung"]):
        lx = left + k * 150
        parts.append(f'<rect x="{lx}" y="{3 * bar + 20}" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{3 * bar + 30}">{_e(name)}</text>')
    y2 = bar + 16
    parts.append(f'<text x="0" y="{y2 + bar * 0.7:.0f}">all on top rung (estimate)</text>')
    parts.append(f'<rect x="{left}" y="{y2}" width="{baseline * scale:.1f}" height="{bar}" fill="#999"/>')
    parts.append(f'<text x="{left + 6:.1f}" y="{y2 + bar * 0.7:.0f}" style="fill:#fff">{usd(baseline)}</text>')
    parts.append("</svg>")
    rows = [
        [
            _e(name),
            _v(f"by_rung.{_k(name)}.cost_usd", usd(g["cost_usd"])),
            _v(f"by_rung.{_k(name)}.cost_share", pct(g["cost_share"])),
            _v(f"by_rung.{_k(name)}.cost_per_visit_usd", usd(g["cost_per_visit_usd"])),
        ]
        for name, g in d["by_rung"].items()
    ]
    rows.append(["<b>top rung only (estimate)</b>", _v("baseline_top_cost_usd", usd(baseline)), "", ""])
    saved = "-" if d["savings_pct"] is None else f"{d['savings_pct']:.1f}%"
    return (
        "".join(parts)
        + _table(["rung", "cost", "share", "cost / visit"], rows)
        + f"<p>Savings {_v('savings_usd', usd(d['savings_usd']))} ({_v('savings_pct', saved)}). "
        f"<span class='note'>{_e(d['baseline_method'])}.</span></p>"
    )


def rungs_table(d: dict[str, Any]) -> str:
    rows = []
    for name, g in d["by_rung"].items():
        p = f"by_rung.{_k(name)}"
        rows.append(
            [
                _e(name),
                _e(g["model"] or "-"),
                _v(f"{p}.reached", f"{g['reached']:,}"),
                _v(f"{p}.accepted_rate", pct(g["accepted_rate"])),
                _v(f"{p}.escalation_rate", pct(g["escalation_rate"])),
                _v(f"{p}.errors", f"{g['errors']:,}"),
                _v(f"{p}.retry_rate", pct(g["retry_rate"])),
                _e(f"{g['latency_ms']['p50'] or 0:,.0f} / {g['latency_ms']['p95'] or 0:,.0f}"),
            ]
        )
    return _table(["rung", "model", "visits", "accepted", "escalated", "errors", "retries/call", "p50/p95 ms"], rows, 2)


def reasons_html(d: dict[str, Any]) -> str:
    rows = []
    for name, g in d["by_rung"].items():
        for reason, n in g["reasons"].items():
            share = n / g["reached"] if g["reached"] else 0.0
            bar = f'<svg width="120" height="10"><rect width="{120 * share:.1f}" height="10" fill="#d62728"/></svg>'
            rows.append(
                [_e(name), _e(reason), _v(f"by_rung.{_k(name)}.reasons.{_k(reason)}", f"{n:,}"), _e(pct(share)), bar]
            )
    if not rows:
        return "<p class='note'>No rung escalated.</p>"
    return _table(["rung", "reason", "count", "per visit", ""], rows, 2)


def scores_html(d: dict[str, Any]) -> str:
    rows = []
    for name, g in d["by_rung"].items():
        for validator, s in g.get("scores", {}).items():
            p = f"by_rung.{_k(name)}.scores.{_k(validator)}"
            box = ""
            if s["p10"] is not None:
                sx = [120 * min(1.0, max(0.0, s[q])) for q in ("p10", "p25", "p50", "p75", "p90")]
                box = (
                    f'<svg width="124" height="14"><line x1="{sx[0]:.1f}" x2="{sx[4]:.1f}" y1="7" y2="7" '
                    f'stroke="#555"/><rect x="{sx[1]:.1f}" y="2" width="{max(sx[3] - sx[1], 1):.1f}" height="10" '
                    'fill="#9ecae1" stroke="#555"/>'
                    f'<line x1="{sx[2]:.1f}" x2="{sx[2]:.1f}" y1="1" y2="13" stroke="#000" stroke-width="2"/></svg>'
                )
            rows.append(
                [
                    _e(name),
                    _e(validator),
                    _v(f"{p}.count", f"{s['count']:,}"),
                    *(_v(f"{p}.{q}", score(s[q])) for q in ("p10", "p25", "p50", "p75", "p90")),
                    box,
                ]
            )
    if not rows:
        return "<p class='note'>No verdict carried a score.</p>"
    return _table(["rung", "validator", "n", "p10", "p25", "p50", "p75", "p90", "0 … 1"], rows, 2) + (
        "<p class='note'>Quantiles of the validators' scores (within 0.0025); the box is p25-p75, the whiskers "
        "p10-p90, the bar the median.</p>"
    )


def _change(f: dict[str, Any]) -> str:
    c = f["change"]
    if c is None:
        return "-"
    return {
        "escalation_rate": f"{100 * c:+.1f} pp",
        "reason_mix": f"TVD {c:.2f}",
        "score": f"KS {c:.2f}",
    }.get(f["metric"], f"{100 * c:+.1f}%")


def drift_html(d: dict[str, Any]) -> str:
    cmp = d.get("compare")
    if not cmp:
        return "<p class='note'>No comparison: run with <code>--compare 1h</code> (or 1000r) for drift.</p>"
    pw, cw = cmp["previous"] or {}, cmp["current"] or {}
    n_cur = _v("compare.current.requests", f"{cw.get('requests', 0):,}")
    n_prev = _v("compare.previous.requests", f"{pw.get('requests', 0):,}")
    drifted = "yes" if cmp["drifted"] else "no"
    out = [
        f"<p>Last {_e(cmp['window'])}: {n_cur} requests vs the window before: {n_prev} requests. "
        f"Drift: <b data-json='compare.drifted'>{drifted}</b>.</p>"
    ]
    for e in cmp.get("explanations", []):
        if e["flagged"]:
            out.append(f"<div class='summary'>{_e(e['summary'])}</div>")
    rows = []
    for i, f in enumerate(cmp["findings"]):
        metric = f["metric"] + (f":{f['validator']}" if f["metric"] == "score" else "")
        fmt = {"escalation_rate": pct, "score": score}.get(f["metric"], usd)
        if f["metric"] == "reason_mix":
            prev = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(f["previous"].items())[:3]) or "-"
            cur = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(f["current"].items())[:3]) or "-"
            prev, cur = _e(prev), _e(cur)
        else:
            prev = _v(f"compare.findings.{i}.previous", fmt(f["previous"]))
            cur = _v(f"compare.findings.{i}.current", fmt(f["current"]))
        status = "<span class='drift'>DRIFT</span>" if f["flagged"] else f"<span class='ok'>{_e(f['note'])}</span>"
        rows.append(
            [
                _e(f["rung"]),
                _e(metric),
                prev,
                cur,
                _e(_change(f)),
                _e(p_text(f["p_value"])),
                _e(f"{f['n_previous']:,}/{f['n_current']:,}"),
                status,
            ]
        )
    heads = ["rung", "metric", "before", "after", "change", "p", "n", "status"]
    flagged = [r for r, f in zip(rows, cmp["findings"], strict=True) if f["flagged"]]
    if flagged:
        out.append(_table(heads, flagged, 2))
    out.append(f"<details><summary>All {len(rows)} findings</summary>{_table(heads, rows, 2)}</details>")
    where = []
    for e in cmp.get("explanations", []):
        for s in [*e["slices"], *e["reasons"]]:
            if e["flagged"]:
                where.append(
                    [
                        _e(e["scope"]),
                        _e(s["label"]),
                        _e(pct(s["previous"])),
                        _e(pct(s["current"])),
                        _e(f"{100 * s['contribution']:+.1f} pp"),
                        _e(p_text(s["p_value"])),
                        _e(s["note"]),
                    ]
                )
    if where:
        table = _table(["scope", "slice", "before", "after", "contribution", "p", ""], where, 2)
        out.append(f"<details><summary>Where the drift came from: the slices, ranked</summary>{table}</details>")
    return "".join(out)


def slices_html(d: dict[str, Any]) -> str:
    out = []
    meta = d.get("by_metadata")
    if meta:
        keys = meta.get("keys") or [meta["key"]]
        rows = [
            [
                *(_e(g["values"].get(k, "")) for k in keys),
                _v(f"by_metadata.groups.{_k(name)}.requests", f"{g['requests']:,}"),
                _v(f"by_metadata.groups.{_k(name)}.escalated_requests.rate", pct(g["escalated_requests"]["rate"])),
                _v(f"by_metadata.groups.{_k(name)}.cost_usd", usd(g["cost_usd"])),
                _e("-" if g["savings_pct"] is None else f"{g['savings_pct']:.1f}%"),
            ]
            for name, g in meta["groups"].items()
        ]
        out.append(_table([*keys, "requests", "escalated", "cost", "savings"], rows, len(keys)))
    sl = d.get("slices")
    if sl:
        dims = sl["by"]
        rows = [
            [
                *(_e(r["key"][b]) for b in dims),
                _v(f"slices.rows.{i}.visits", f"{r['visits']:,}"),
                _v(f"slices.rows.{i}.escalation_rate", pct(r["escalation_rate"])),
                _e(usd(r["cost_usd"])) if "cost_usd" in r else "",
            ]
            for i, r in enumerate(sl["rows"])
        ]
        out.append(
            _table([*(b.removeprefix("metadata.") for b in dims), "visits", "escalated", "cost"], rows, len(dims))
        )
    if not out:
        return "<p class='note'>No slices: run with <code>--by metadata.task,rung</code> (or reason, model).</p>"
    return "".join(out)


def render_html(d: dict[str, Any]) -> str:
    tr = d["time_range"] or {}
    bad = d["bad_lines"]["count"]
    drift = [("Drift", drift_html(d))]
    sections = [
        ("Overview", cards(d)),
        *(drift if d.get("compare") else []),  # when compared, the finding comes first
        ("Escalation rate per rung over time", timeline_svg(d)),
        *(
            [(f"Escalation rate over time by {', '.join(d['by'])}", timeline_svg(d, "timeline_by"))]
            if d.get("timeline_by")
            else []
        ),
        ("Cost: the cascade against the top rung alone", cost_svg(d)),
        ("Rungs", rungs_table(d)),
        ("Escalation reasons per rung", reasons_html(d)),
        ("Validator score distributions", scores_html(d)),
        *([] if d.get("compare") else drift),
        ("Slices" + (f" by {', '.join(d['by'])}" if d.get("by") else ""), slices_html(d)),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    note = (
        f"<p class='note'>{bad:,} unreadable line(s) skipped (listed by <code>cascade stats</code>).</p>" if bad else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>cascade stats: {_e(', '.join(d['files']))}</title><style>{CSS}</style></head><body>"
        f"<h1>cascade stats</h1><p class='sub'>{_e(', '.join(d['files']))}: {_e(_when(tr.get('first')))} to "
        f"{_e(_when(tr.get('last')))}; schema {_e(d['schema'])}</p>{body}{note}</body></html>\n"
    )


def write_html(d: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(d))
