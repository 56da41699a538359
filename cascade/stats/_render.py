"""The report for people: tables drawn with rich when it is installed, aligned plain text otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[list[str]]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:,.4f}" if abs(x) >= 0.01 else f"${x:.6f}"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def count_rate(n: int, rate: float | None) -> str:
    return f"{n:,} ({pct(rate)})"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def tables(d: dict[str, Any], by: Sequence[str]) -> list[Table]:
    out: list[Table] = []
    ff = d["final_failures"]
    tr = d["time_range"] or {}
    overview = [
        ["files", ", ".join(d["files"])],
        ["time range", f"{_when(tr.get('first'))} .. {_when(tr.get('last'))}"],
        ["requests", f"{d['requests']:,}"],
        ["accepted", count_rate(d["accepted"], d["accepted_rate"])],
        [
            "escalated (requests)",
            count_rate(d["escalated_requests"]["count"], d["escalated_requests"]["rate"]),
        ],
        [
            "final-rung failures",
            count_rate(ff["count"], ff["rate"])
            + ("  " + ", ".join(f"{k}: {v}" for k, v in ff["by_outcome"].items()) if ff["by_outcome"] else ""),
        ],
        ["budget stops", count_rate(d["budget_stops"]["count"], d["budget_stops"]["rate"])],
        ["attempts / calls", f"{d['attempts']:,} / {d['calls']:,}"],
        ["errors (per attempt)", count_rate(d["errors"]["count"], d["errors"]["rate"])],
        ["retries (per call)", count_rate(d["retries"]["count"], d["retries"]["rate"])],
        ["cost", usd(d["cost_usd"])],
        ["cost / request", usd(d["cost_per_request_usd"])],
        ["cost / accepted answer", usd(d["cost_per_accepted_usd"])],
        ["all on top rung (estimate*)", usd(d["baseline_top_cost_usd"])],
        ["savings", f"{usd(d['savings_usd'])} ({_pct_number(d['savings_pct'])})"],
        ["request latency ms p50/p95/p99", _pcts(d["latency_ms"])],
    ]
    if d["incomplete_requests"]:
        overview.append(["incomplete requests (no request event)", f"{d['incomplete_requests']:,}"])
    out.append(Table("Overview", ["figure", "value"], overview))
    out += _attempt_table("By rung", "rung", d["by_rung"])
    if d["by_reason"]:
        out.append(
            Table(
                "Escalation reasons (attempts that escalated, errored or were skipped)",
                ["reason", "count", "share", "per request", "re-asks"],
                [
                    [r, f"{v['count']:,}", pct(v["share"]), pct(v["per_request"]), f"{v['reasks']:,}"]
                    for r, v in d["by_reason"].items()
                ],
            )
        )
    if "model" in by:
        out += _attempt_table("By model", "model", d["by_model"])
    meta = d.get("by_metadata")
    if meta:
        out.append(
            Table(
                f"By metadata.{meta['key']}",
                [meta["key"], "requests", "accepted", "escalated", "failures", "cost", "cost/req", "savings"],
                [
                    [
                        k,
                        f"{g['requests']:,}",
                        count_rate(g["accepted"], g["accepted_rate"]),
                        count_rate(g["escalated_requests"]["count"], g["escalated_requests"]["rate"]),
                        count_rate(g["final_failures"]["count"], g["final_failures"]["rate"]),
                        usd(g["cost_usd"]),
                        usd(g["cost_per_request_usd"]),
                        _pct_number(g["savings_pct"]),
                    ]
                    for k, g in meta["groups"].items()
                ],
            )
        )
    cmp = d.get("compare")
    if cmp:
        rows = []
        for f in cmp["findings"]:
            if f["metric"] == "reason_mix":
                prev, cur = _mix(f["previous"]), _mix(f["current"])
                change = "-" if f["change"] is None else f"TVD {f['change']:.3f}"
            elif f["metric"] == "escalation_rate":
                prev, cur = pct(f["previous"]), pct(f["current"])
                change = "-" if f["change"] is None else f"{100 * f['change']:+.1f} pp"
            else:
                prev, cur = usd(f["previous"]), usd(f["current"])
                change = "-" if f["change"] is None else f"{100 * f['change']:+.1f}%"
            rows.append(
                [
                    f["rung"],
                    f["metric"],
                    prev,
                    cur,
                    change,
                    f"{f['p_value']:.4f}",
                    f"{f['n_previous']}/{f['n_current']}",
                    ("DRIFT" if f["flagged"] else f["note"]),
                ]
            )
        pw, cw = cmp["previous"] or {}, cmp["current"] or {}
        out.append(
            Table(
                f"Drift: last {cmp['window']} ({cw.get('requests', 0):,} requests) vs the one before "
                f"({pw.get('requests', 0):,} requests)",
                ["rung", "metric", "previous", "current", "change", "p", "n prev/cur", "status"],
                rows,
            )
        )
    if d.get("per_file"):
        out.append(_files_table(d["per_file"], d))
    return out


def _files_table(files: list[dict[str, Any]], merged: dict[str, Any]) -> Table:
    """``--per-file``: one row per log (one per batch worker), then the merged figures they add up to."""
    rows = [
        [f["file"], f"{f['requests']:,}", count_rate(f["accepted"], f["accepted_rate"]), f"{f['attempts']:,}",
         f"{f['calls']:,}", usd(f["cost_usd"]), ms(f["latency_ms_p50"])]
        for f in files
    ]  # fmt: skip
    rows.append(
        ["(merged)", f"{merged['requests']:,}", count_rate(merged["accepted"], merged["accepted_rate"]),
         f"{merged['attempts']:,}", f"{merged['calls']:,}", usd(merged["cost_usd"]), ms(merged["latency_ms"]["p50"])]
    )  # fmt: skip
    return Table("By file", ["file", "requests", "accepted", "attempts", "calls", "cost", "latency p50 ms"], rows)


def _pct_number(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def _mix(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(shares.items())[:3]) or "-"


def _pcts(lat: dict[str, Any]) -> str:
    return f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])}"


def _attempt_table(title: str, label: str, groups: dict[str, Any]) -> list[Table]:
    second = "model" if label == "rung" else "rung #"
    outcomes = [
        [
            name,
            str(g["model"] or "-") if label == "rung" else str(g["index"] if g["index"] is not None else "-"),
            f"{g['reached']:,}",
            count_rate(g["accepted"], g["accepted_rate"]),
            count_rate(g["escalated"] + g["errors"], g["escalation_rate"]),
            f"{g['errors']:,}",
            f"{g['skipped']:,}",
            f"{g['reasks']:,}",
            count_rate(g["retries"], g["retry_rate"]),
        ]
        for name, g in groups.items()
    ]
    money = [
        [
            name,
            f"{g['attempts']:,}",
            usd(g["cost_usd"]),
            pct(g["cost_share"]),
            usd(g["cost_per_visit_usd"]),
            ms(g["latency_ms"]["p50"]),
            ms(g["latency_ms"]["p95"]),
            ms(g["latency_ms"]["p99"]),
        ]
        for name, g in groups.items()
    ]
    return [
        Table(
            f"{title}: outcomes (rates per visit)",
            [
                label,
                second,
                "reached",
                "accepted",
                "escalated",
                "errors",
                "skipped",
                "re-asks",
                "retries/call",
            ],
            outcomes,
        ),
        Table(
            f"{title}: cost and attempt latency",
            [label, "attempts", "cost", "share", "cost/visit", "p50 ms", "p95 ms", "p99 ms"],
            money,
        ),
    ]


def footer(d: dict[str, Any]) -> list[str]:
    lines = [
        f"* {d['baseline_method']}.",
        f"Latency percentiles are within {100 * d['latency_relative_error']:.0f}% (log-bucket histogram). "
        "Escalated = the rung's answer failed its checks or the call errored; rates are per rung visit.",
    ]
    bad = d["bad_lines"]
    if bad["count"]:
        lines.append(f"{bad['count']:,} bad line(s) skipped:")
        lines += [f"  {b['file']}:{b['line']}: {b['error']}" for b in bad["samples"][:10]]
        if bad["count"] > 10:
            lines.append(f"  ... and {bad['count'] - 10:,} more (all counted; first {len(bad['samples'])} in --json)")
    return lines


def render(d: dict[str, Any], by: Sequence[str], stream: TextIO | None = None, use_rich: bool = True) -> None:
    stream = stream or sys.stdout
    if d["empty"]:
        files = ", ".join(d["files"])
        stream.write(
            f"No cascade events in {files}" + (" in the given time range" if d["since"] or d["until"] else "") + ".\n"
        )
        for line in footer(d)[2:]:
            stream.write(line + "\n")
        return
    ts = tables(d, by)
    try:
        if not use_rich:
            raise ImportError
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        for t in ts:
            stream.write(_plain(t) + "\n")
    else:
        console = Console(file=stream, width=Console().width if stream.isatty() else 140)
        for t in ts:
            rt = RichTable(title=t.title, title_justify="left")
            for i, h in enumerate(t.headers):
                rt.add_column(h, justify="left" if i == 0 else "right")
            for row in t.rows:
                rt.add_row(*row)
            console.print(rt)
    for line in footer(d):
        stream.write(line + "\n")


def _plain(t: Table) -> str:
    cells = [list(t.headers), *t.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(t.headers))]
    lines = [t.title]
    for n, row in enumerate(cells):
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
