"""The report for people: tables drawn with rich when it is installed, aligned plain text otherwise.

Everything printed that came from a log (rung, model and reason names, metadata values, file names) is
text, never markup, and its control characters are shown escaped (``\\x1b``), so a log cannot restyle,
move or clear the terminal. Tables fit the terminal (80 columns when not a terminal): a long cell is cut
with an ellipsis, and a table too wide is split into several that repeat its first column.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from ._attribution import p_text

WIDTH = 80
MAX_CELL = 36
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: object) -> str:
    """Text from a log made safe for a terminal: control and bidi characters shown as escapes."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", str(text)
    )


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[list[str]]
    left: int = 1
    """Leading text columns (left-aligned); the rest are figures (right-aligned)."""


def pct(x: float | None) -> str:
    """A share as a percentage that never rounds a partial result to 0.0% or 100.0%."""
    return "-" if x is None else _percent(100 * x)


def _percent(p: float) -> str:
    text = f"{p:.1f}%"
    if text == "100.0%" and p < 100:
        return ">99.9%"
    if text in ("0.0%", "-0.0%") and p != 0:
        return "<0.1%" if p > 0 else ">-0.1%"
    return text


def usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.4f}" if abs(x) >= 0.01 else f"${x:.6f}"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def count_rate(n: int, rate: float | None) -> str:
    return f"{n:,} ({pct(rate)})"


def score(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct_number(x: float | None) -> str:
    return "-" if x is None else _percent(x)


def _pcts(lat: dict[str, Any]) -> str:
    return f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])}"


def overview(d: dict[str, Any]) -> Table:
    ff = d["final_failures"]
    tr = d["time_range"] or {}
    rows = [
        ["first event", _when(tr.get("first"))],
        ["last event", _when(tr.get("last"))],
        ["requests", f"{d['requests']:,}"],
        ["accepted", count_rate(d["accepted"], d["accepted_rate"])],
        ["escalated (requests)", count_rate(d["escalated_requests"]["count"], d["escalated_requests"]["rate"])],
        ["final-rung failures", count_rate(ff["count"], ff["rate"])],
    ]
    rows += [[f"  {k}", f"{v:,}"] for k, v in ff["by_outcome"].items()]
    rows += [
        ["budget stops", count_rate(d["budget_stops"]["count"], d["budget_stops"]["rate"])],
        ["attempts / calls", f"{d['attempts']:,} / {d['calls']:,}"],
        ["errors (per attempt)", count_rate(d["errors"]["count"], d["errors"]["rate"])],
        ["retries (per call)", count_rate(d["retries"]["count"], d["retries"]["rate"])],
        ["cost", usd(d["cost_usd"])],
        ["cost / request", usd(d["cost_per_request_usd"])],
        ["cost / accepted answer", usd(d["cost_per_accepted_usd"])],
        ["all on top rung (estimate*)", usd(d["baseline_top_cost_usd"])],
        ["savings", f"{usd(d['savings_usd'])} ({_pct_number(d['savings_pct'])})"],
        ["latency ms p50/p95/p99", _pcts(d["latency_ms"])],
    ]
    if d["incomplete_requests"]:
        rows.append(["incomplete (no request event)", f"{d['incomplete_requests']:,}"])
    return Table("Overview", ["figure", "value"], rows)


def _attempt_tables(title: str, label: str, groups: dict[str, Any]) -> list[Table]:
    outcomes = [
        [
            name,
            f"{g['reached']:,}",
            count_rate(g["accepted"], g["accepted_rate"]),
            count_rate(g["escalated"] + g["errors"], g["escalation_rate"]),
            f"{g['errors']:,}",
            usd(g["cost_usd"]),
            pct(g["cost_share"]),
        ]
        for name, g in groups.items()
    ]
    calls = [
        [
            name,
            str(g["model"] or "-") if label == "rung" else str(g["index"] if g["index"] is not None else "-"),
            f"{g['skipped']:,}",
            f"{g['reasks']:,}",
            count_rate(g["retries"], g["retry_rate"]),
            usd(g["cost_per_visit_usd"]),
            ms(g["latency_ms"]["p50"]),
            ms(g["latency_ms"]["p95"]),
        ]
        for name, g in groups.items()
    ]
    return [
        Table(
            f"{title} (rates per visit; escalated includes errors)",
            [label, "visits", "accepted", "escalated", "errors", "cost", "share"],
            outcomes,
        ),
        Table(
            f"{title}: calls (retries per call), latency (ms)",
            [label, "model" if label == "rung" else "rung #", "skips", "re-asks", "retries", "$/visit", "p50", "p95"],
            calls,
        ),
    ]


def reasons_per_rung(d: dict[str, Any]) -> Table | None:
    rows = []
    for name, g in d["by_rung"].items():
        failed = sum(g["reasons"].values())
        for reason, n in g["reasons"].items():
            rows.append([name, reason, f"{n:,}", pct(n / g["reached"] if g["reached"] else None),
                         pct(n / failed if failed else None)])  # fmt: skip
    if not rows:
        return None
    return Table(
        "Escalation reasons per rung (visits that escalated, errored or were skipped)",
        ["rung", "reason", "count", "per visit", "of rung's"],
        rows,
        left=2,
    )


def scores_per_rung(d: dict[str, Any]) -> Table | None:
    rows = []
    for name, g in d["by_rung"].items():
        for validator, s in g.get("scores", {}).items():
            rows.append(
                [name, validator, f"{s['count']:,}", *(score(s[q]) for q in ("p10", "p25", "p50", "p75", "p90"))]
            )
    if not rows:
        return None
    return Table(
        "Validator scores per rung (quantiles)",
        ["rung", "validator", "n", "p10", "p25", "p50", "p75", "p90"],
        rows,
        left=2,
    )


def metadata_table(meta: dict[str, Any]) -> Table:
    keys = meta.get("keys") or [meta["key"]]
    rows = [
        [
            *[g.get("values", {}).get(k, name) for k in keys],
            f"{g['requests']:,}",
            count_rate(g["escalated_requests"]["count"], g["escalated_requests"]["rate"]),
            count_rate(g["final_failures"]["count"], g["final_failures"]["rate"]),
            usd(g["cost_usd"]),
            usd(g["cost_per_request_usd"]),
            _pct_number(g["savings_pct"]),
        ]
        for name, g in meta["groups"].items()
    ]
    return Table(
        "By " + ", ".join(f"metadata.{k}" for k in keys) + " (requests)",
        [*keys, "requests", "escalated", "failures", "cost", "$/request", "savings"],
        rows,
        left=len(keys),
    )


def slices_table(sl: dict[str, Any], by: Sequence[str]) -> Table:
    heads = [b.removeprefix("metadata.") for b in by]
    rows = []
    for r in sl["rows"]:
        keys = [r["key"][b] for b in by]
        if "accepted" in r:
            top = next(iter(r["reasons"]), "-")
            rows.append([*keys, f"{r['visits']:,}", count_rate(r["escalated"], r["escalation_rate"]),
                         usd(r["cost_usd"]), top])  # fmt: skip
        else:
            rows.append([*keys, f"{r['visits']:,}", count_rate(r["escalated"], r["escalation_rate"])])
    with_reason = "reason" in by
    title = (
        "By " + ", ".join(by) + (" (visits failing with the reason, out of all visits)" if with_reason else " (visits)")
    )
    headers = [*heads, "visits", "escalated"] + ([] if with_reason else ["cost", "top reason"])
    return Table(title, headers, rows, left=len(by))


def _p(p: float) -> str:
    return p_text(p)[1:].removeprefix("=")


def drift_tables(cmp: dict[str, Any]) -> list[Table]:
    rows = []
    names = {"escalation_rate": "escalation", "reason_mix": "reason mix", "cost_per_request": "cost/req",
             "cost_per_attempt": "cost/att"}  # fmt: skip
    for f in cmp["findings"]:
        metric = names.get(f["metric"], f["metric"])
        if f["metric"] == "reason_mix":  # the mixes themselves: the "where" table's reason rows
            prev = cur = "-"
            change = "-" if f["change"] is None else f"TVD {f['change']:.2f}"
        elif f["metric"] == "escalation_rate":
            prev, cur = pct(f["previous"]), pct(f["current"])
            change = "-" if f["change"] is None else f"{100 * f['change']:+.1f} pp"
        elif f["metric"] == "score":
            metric = _cut(f"{f['validator']}", 10) + " p50"
            prev, cur = score(f["previous"]), score(f["current"])
            change = "-" if f["change"] is None else f"KS {f['change']:.2f}"
        else:
            prev, cur = usd(f["previous"]), usd(f["current"])
            change = "-" if f["change"] is None else f"{100 * f['change']:+.1f}%"
        status = (
            "DRIFT"
            if f["flagged"]
            else {"moved, not significant": "n.s.", "insufficient data": "few"}.get(f["note"], f["note"])
        )
        rows.append([f["rung"], metric, prev, cur, change, _p(f["p_value"]), status])
    pw, cw = cmp["previous"] or {}, cmp["current"] or {}
    out = [
        Table(
            f"Drift: last {cmp['window']} ({cw.get('requests', 0):,} requests) vs the one before "
            f"({pw.get('requests', 0):,} requests)",
            ["rung", "metric", "before", "after", "change", "p", "status"],
            rows,
            left=2,
        )
    ]
    where = []
    for e in cmp.get("explanations", []):
        if not e["flagged"]:
            continue
        for s in [*e["slices"], *e["reasons"]]:
            status = {"insufficient data": "few"}.get(s["note"], s["note"])
            where.append([e["scope"], s["label"], pct(s["previous"]), pct(s["current"]),
                          f"{100 * s['contribution']:+.1f} pp", _p(s["p_value"]), status])  # fmt: skip
    if where:
        out.append(
            Table(
                "Drift: where (slices of each drifted rate, ranked by their contribution to its change)",
                ["scope", "slice", "before", "after", "contrib.", "p", "status"],
                where,
                left=2,
            )
        )
    return out


def _mix(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(shares.items())[:2]) or "-"


def tables(d: dict[str, Any], by: Sequence[str] = ()) -> list[Table]:
    out = [overview(d)]
    out += _attempt_tables("By rung", "rung", d["by_rung"])
    for t in (reasons_per_rung(d), scores_per_rung(d)):
        if t is not None:
            out.append(t)
    if d.get("by_model"):
        out += _attempt_tables("By model", "model", d["by_model"])
    if d.get("by_metadata"):
        out.append(metadata_table(d["by_metadata"]))
    if d.get("slices"):
        out.append(slices_table(d["slices"], d["by"]))
    if d.get("compare"):
        out += drift_tables(d["compare"])
    return out


def footer(d: dict[str, Any]) -> list[str]:
    lines = [
        f"* {d['baseline_method']}.",
        f"Latency percentiles are within {100 * d['latency_relative_error']:.0f}% (log-bucket histogram). "
        "Escalated = the rung's answer failed its checks or the call errored; rates are per rung visit.",
    ]
    cmp = d.get("compare")
    for e in (cmp or {}).get("explanations", []):
        if e["flagged"]:
            lines.append(f"Drift: {e['summary']}")
    bad = d["bad_lines"]
    if bad["count"]:
        lines.append(f"{bad['count']:,} bad line(s) skipped:")
        lines += [f"  {b['file']}:{b['line']}: {b['error']}" for b in bad["samples"][:10]]
        if bad["count"] > 10:
            lines.append(f"  ... and {bad['count'] - 10:,} more (all counted; first {len(bad['samples'])} in --json)")
    return lines


def _cut(cell: str, limit: int = MAX_CELL) -> str:
    cell = clean(cell)
    return cell if len(cell) <= limit else cell[: limit - 1] + "…"


def fit(t: Table, width: int, pad: int) -> list[Table]:
    """The table as one or more tables no wider than ``width``: cells cut at ``MAX_CELL`` characters
    (a two-column table's value at what the line leaves), columns split off into further tables that
    repeat the first column."""
    heads = [clean(h) for h in t.headers]
    if len(heads) == 2:
        key_w = min(MAX_CELL, max(len(_cut(r[0])) for r in [heads, *t.rows]))
        rows = [[_cut(r[0]), _cut(r[1], max(10, width - key_w - pad * 2))] for r in t.rows]
        return [Table(clean(t.title), heads, rows)]
    rows = [[_cut(c) for c in r] for r in t.rows]
    widths = [max(len(r[i]) for r in [heads, *rows]) + pad for i in range(len(heads))]
    groups: list[list[int]] = [[]]
    edge = 1 if pad > 2 else 0  # a drawn table's closing border
    used = widths[0] + edge
    for i in range(1, len(heads)):
        if groups[-1] and used + widths[i] > width:
            groups.append([])
            used = widths[0] + edge
        groups[-1].append(i)
        used += widths[i]
    title = clean(t.title)
    if len(groups) == 1:
        return [Table(title, heads, rows, t.left)]
    return [
        Table(
            f"{title} ({n + 1}/{len(groups)})",
            [heads[0], *[heads[i] for i in g]],
            [[r[0], *[r[i] for i in g]] for r in rows],
            1 + sum(1 for i in g if i < t.left),
        )
        for n, g in enumerate(groups)
    ]


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(clean(text), width, subsequent_indent="  ", break_on_hyphens=False) or [""]


def render(d: dict[str, Any], by: Sequence[str] = (), stream: TextIO | None = None, use_rich: bool = True) -> None:
    stream = stream or sys.stdout
    width = shutil.get_terminal_size((WIDTH, 24)).columns if stream.isatty() else WIDTH
    if d["empty"]:
        files = ", ".join(d["files"])
        lines = [
            f"No cascade events in {files}" + (" in the given time range" if d["since"] or d["until"] else "") + "."
        ]
        _write_footer([*lines, *footer(d)[2:]], stream, width)
        return
    ts = tables(d, by)
    _write_footer([f"Files: {', '.join(d['files'])}"], stream, width)
    try:
        if not use_rich:
            raise ImportError
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text
    except ImportError:
        for t in ts:
            for part in fit(t, width, 2):
                stream.write(_plain(part, width) + "\n")
    else:
        console = Console(file=stream, width=width, markup=False, highlight=False, emoji=False)
        for t in ts:
            for part in fit(t, width, 3):
                rt = RichTable(title=Text(part.title), title_justify="left")
                for i, h in enumerate(part.headers):
                    rt.add_column(Text(h), justify="left" if i < part.left else "right")
                for row in part.rows:
                    rt.add_row(*(Text(c) for c in row))
                console.print(rt)
    _write_footer(footer(d), stream, width)


def _write_footer(lines: list[str], stream: TextIO, width: int) -> None:
    """Prose wrapped to the width; indented lines (``file:line: error``) kept whole, for grep."""
    for line in lines:
        stream.write((clean(line) if line.startswith("  ") else "\n".join(_wrap(line, width))) + "\n")


def _plain(t: Table, width: int = WIDTH) -> str:
    cells = [list(t.headers), *t.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(t.headers))]
    lines = _wrap(t.title, width)
    for n, row in enumerate(cells):
        padded = [c.ljust(w) if i < t.left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
