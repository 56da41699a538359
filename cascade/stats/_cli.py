"""``cascade stats``: summarise escalation logs, compare windows for drift, plot."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ._drift import Thresholds, parse_window
from ._reader import LogFileError
from ._report import build_report, parse_time
from ._slices import parse_by

EXIT_OK, EXIT_USAGE, EXIT_DRIFT = 0, 2, 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stats",
        help="summarise escalation logs (JSONL, .gz too): costs, escalations, latency, drift",
        description="Summarise one or many cascade escalation logs in constant memory.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="JSONL escalation log(s), plain or gzip")
    p.add_argument("--json", action="store_true", help="print only JSON (schema cascade.stats/1) on stdout")
    p.add_argument(
        "--since", metavar="T", help="only events at or after T (unix seconds, ISO-8601 (UTC if no zone), now)"
    )
    p.add_argument("--until", metavar="T", help="only events before T (unix seconds, ISO-8601, now)")
    p.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="DIM[,DIM...]",
        help="slice along rung, reason, model, metadata.KEY (comma-separated or repeated, e.g. "
        "--by metadata.task,rung); metadata keys alone slice requests, with rung/model/reason rung visits; "
        "--compare ranks these slices by their share of a drift",
    )
    p.add_argument(
        "--compare",
        metavar="WINDOW",
        help="drift: last WINDOW vs the one before; WINDOW is 30m, 1h, 1d, 90s, 2w or requests like 1000r",
    )
    p.add_argument("--fail-on-drift", action="store_true", help="exit 3 when --compare flags drift")
    d = Thresholds()
    p.add_argument(
        "--drift-rate", type=float, default=d.rate, help=f"escalation-rate change to flag (default {d.rate})"
    )
    p.add_argument("--drift-tvd", type=float, default=d.tvd, help=f"reason-mix distance to flag (default {d.tvd})")
    p.add_argument("--drift-cost", type=float, default=d.cost, help=f"relative cost change to flag (default {d.cost})")
    p.add_argument(
        "--drift-score",
        type=float,
        default=d.score,
        help=f"validator-score distribution distance (Kolmogorov-Smirnov) to flag (default {d.score})",
    )
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"significance level in (0, 1) (default {d.alpha})")
    p.add_argument(
        "--min-count",
        type=int,
        default=d.min_count,
        help=f"min observations per window (default {d.min_count})",
    )
    p.add_argument("--plot", metavar="PNG", help="write escalation rate over time and cost breakdown (needs [plot])")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="write a self-contained HTML report (no scripts, nothing fetched when viewed)",
    )
    p.add_argument(
        "--export",
        nargs=2,
        metavar=("FORMAT", "FILE"),
        help="write one row per attempt and per request: FORMAT csv, or parquet (needs [export])",
    )
    p.add_argument("--plain", action="store_true", help="plain-text tables even when rich is installed")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    from ._render import clean  # a file name or a line from the log may carry terminal escapes

    print(f"cascade stats: error: {clean(message)}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    try:
        by = parse_by(args.by)
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
        window = parse_window(args.compare) if args.compare else None
    except ValueError as exc:
        return _fail(str(exc))
    if args.fail_on_drift and window is None:
        return _fail("--fail-on-drift needs --compare WINDOW")
    for name in ("drift_rate", "drift_tvd", "drift_cost", "drift_score", "alpha"):
        v = getattr(args, name)
        if not v > 0:
            return _fail(f"--{name.replace('_', '-')}: expected a positive number, got {v!r}")
    for name in ("drift_tvd", "drift_score", "alpha"):
        v = getattr(args, name)
        if not v < 1:
            return _fail(f"--{name.replace('_', '-')}: expected a number between 0 and 1, got {v!r}")
    if args.export and args.export[0] not in ("csv", "parquet"):
        return _fail(f"--export: expected the format csv or parquet, got {args.export[0]!r}")
    thresholds = Thresholds(
        args.drift_rate, args.drift_tvd, args.drift_cost, args.alpha, args.drift_score, max(0, args.min_count)
    )
    try:
        report = build_report(
            args.logs,
            by=by,
            since=since,
            until=until,
            window=window,
            thresholds=thresholds,
            series=bool(args.plot or args.html),
        )
    except LogFileError as exc:
        return _fail(str(exc))
    data = report.data
    bad = data["bad_lines"]
    if data["empty"] and bad["count"] and not data["other_events"]:
        first = bad["samples"][0]
        return _fail(
            f"no line of {', '.join(data['files'])} is a cascade event ({bad['count']:,} unreadable line(s); "
            f"first, {first['file']}:{first['line']}: {first['error']}): is it an escalation log?"
        )
    written = []
    try:
        if args.plot:
            from ._plot import PlotUnavailable, plot

            try:
                plot(data, args.plot)
            except PlotUnavailable as exc:
                return _fail(str(exc))
            written.append(f"plot written to {args.plot}")
        if args.html:
            from ._html import write_html

            write_html(data, args.html)
            written.append(f"HTML report written to {args.html}")
        if args.export:
            from ._export import ExportUnavailable, export

            try:
                rows = export(data["files"], args.export[0], args.export[1], since=since, until=until)
            except ExportUnavailable as exc:
                return _fail(str(exc))
            written.append(f"{rows:,} rows exported to {args.export[1]}")
    except OSError as exc:
        return _fail(f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}")
    try:
        if args.json:
            json.dump(data, sys.stdout, indent=2, allow_nan=False)
            sys.stdout.write("\n")
        else:
            from ._render import render

            render(data, args.by, use_rich=not args.plain)
            for line in written:
                print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # `cascade stats ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    drifted = bool(data["compare"] and data["compare"]["drifted"])
    if drifted and not args.json:
        print("drift detected (see the Drift table)", file=sys.stderr)
    return EXIT_DRIFT if drifted and args.fail_on_drift else EXIT_OK
