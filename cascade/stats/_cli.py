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

EXIT_OK, EXIT_USAGE, EXIT_DRIFT = 0, 2, 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stats",
        help="summarise escalation logs (JSONL, .gz too): costs, escalations, latency, drift",
        description="Summarise one or many cascade escalation logs in constant memory.",
    )
    p.add_argument(
        "logs", nargs="+", metavar="LOG", help="JSONL escalation log(s), plain or gzip; a directory or a quoted glob"
    )
    p.add_argument("--per-file", action="store_true", help="each file's figures too (one log per batch worker)")
    p.add_argument("--json", action="store_true", help="print only JSON (schema cascade.stats/1) on stdout")
    p.add_argument(
        "--since", metavar="T", help="only events at or after T (unix seconds, ISO-8601 (UTC if no zone), now)"
    )
    p.add_argument("--until", metavar="T", help="only events before T (unix seconds, ISO-8601, now)")
    p.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="rung|reason|model|metadata.KEY",
        help="extra grouping (repeatable); metadata.KEY groups request figures by a metadata value",
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
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"significance level (default {d.alpha})")
    p.add_argument(
        "--min-count",
        type=int,
        default=d.min_count,
        help=f"min observations per window (default {d.min_count})",
    )
    p.add_argument("--plot", metavar="PNG", help="write escalation rate over time and cost breakdown (needs [plot])")
    p.add_argument("--plain", action="store_true", help="plain-text tables even when rich is installed")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"cascade stats: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    group_by = None
    for b in args.by:
        if b.startswith("metadata.") and len(b) > len("metadata."):
            if group_by is not None and group_by != b[len("metadata.") :]:
                return _fail(f"--by: only one metadata key at a time, got metadata.{group_by} and {b}")
            group_by = b[len("metadata.") :]
        elif b not in ("rung", "reason", "model"):
            return _fail(f"--by: expected rung, reason, model or metadata.KEY, got {b!r}")
    try:
        since = parse_time(args.since, "--since") if args.since else None
        until = parse_time(args.until, "--until") if args.until else None
        window = parse_window(args.compare) if args.compare else None
    except ValueError as exc:
        return _fail(str(exc))
    if args.fail_on_drift and window is None:
        return _fail("--fail-on-drift needs --compare WINDOW")
    for name in ("drift_rate", "drift_tvd", "drift_cost", "alpha"):
        v = getattr(args, name)
        if not v > 0:
            return _fail(f"--{name.replace('_', '-')}: expected a positive number, got {v!r}")
    thresholds = Thresholds(args.drift_rate, args.drift_tvd, args.drift_cost, args.alpha, max(0, args.min_count))
    try:
        report = build_report(
            args.logs,
            by_model="model" in args.by,
            since=since,
            until=until,
            group_by=group_by,
            window=window,
            thresholds=thresholds,
            series=bool(args.plot),
            per_file=args.per_file,
        )
    except LogFileError as exc:
        return _fail(str(exc))
    data = report.data
    if args.plot:
        from ._plot import PlotUnavailable, plot

        try:
            plot(data, report.series, args.plot)
        except PlotUnavailable as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"--plot: cannot write {args.plot}: {exc}")
    try:
        if args.json:
            json.dump(data, sys.stdout, indent=2, allow_nan=False)
            sys.stdout.write("\n")
        else:
            from ._render import render

            render(data, args.by, use_rich=not args.plain)
            if args.plot:
                print(f"plot written to {args.plot}")
        sys.stdout.flush()
    except BrokenPipeError:  # `cascade stats ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    drifted = bool(data["compare"] and data["compare"]["drifted"])
    if drifted and not args.json:
        print("drift detected (see the Drift table)", file=sys.stderr)
    return EXIT_DRIFT if drifted and args.fail_on_drift else EXIT_OK
