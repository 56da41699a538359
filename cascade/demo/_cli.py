"""``cascade demo``: start the offline ladder, run the two workloads through a 3-rung cascade and
through the top rung alone, print the report and where the escalation log is."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..local import LocalLadder, LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ..local._models import DEFAULT_MODELS
from ._report import full_report
from ._run import ItemOutcome, TaskRun, Tuning, build_ladder, run_task
from ._tasks import INVOICE_TASK, TICKET_TASK, Task, load_items

TASKS = {"tickets": TICKET_TASK, "invoices": INVOICE_TASK}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run a real 3-rung cascade on local models (needs `make local`)",
        description=__doc__,
    )
    p.add_argument("--tasks", default="tickets,invoices", help="comma-separated: tickets, invoices")
    p.add_argument("--rungs", default="small,medium,large", help="local rungs, cheapest first")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of each task")
    p.add_argument("--ticket-threshold", type=float, default=Tuning.ticket_threshold)
    p.add_argument(
        "--invoice-threshold",
        type=float,
        default=Tuning.invoice_threshold,
        help="also require Confidence(T) over the invoice's value tokens (needs logprobs: about 0.5 s a token here)",
    )
    p.add_argument(
        "--small-schema",
        action="store_true",
        help="constrain the small rung's decoding by the schema too (its confidence then carries no signal)",
    )
    p.add_argument(
        "--skip-idle",
        type=int,
        default=Tuning.skip_idle,
        help="skip a rung below the top after N visits with nothing accepted, probing it every N (0: never)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the top-rung-alone comparison")
    p.add_argument("--log", default=None, help="escalation log path (default: out/cascade-demo-<time>.jsonl)")
    p.add_argument(
        "--threads", type=int, default=2, help="llama.cpp threads per server (1 is faster on a busy machine)"
    )
    p.add_argument("--cache-dir", default=None, help="where the assembled models are kept")
    p.set_defaults(func=main)


def _parse(args: argparse.Namespace) -> tuple[list[Task], Tuning]:
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise SystemExit(f"cascade demo: --tasks must name some of {sorted(TASKS)}, got {args.tasks!r}")
    known = [m.name for m in DEFAULT_MODELS]
    rungs = tuple(r.strip() for r in args.rungs.split(",") if r.strip())
    if not rungs or any(r not in known for r in rungs) or len(set(rungs)) != len(rungs):
        raise SystemExit(f"cascade demo: --rungs must be distinct names among {known}, got {args.rungs!r}")
    for flag in ("ticket_threshold", "invoice_threshold"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value <= 1:
            raise SystemExit(f"cascade demo: --{flag.replace('_', '-')} must be in [0, 1], got {value}")
    if args.threads < 1:
        raise SystemExit(f"cascade demo: --threads must be >= 1, got {args.threads}")
    if args.skip_idle < 0:
        raise SystemExit(f"cascade demo: --skip-idle must be >= 0, got {args.skip_idle}")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"cascade demo: --limit must be >= 1, got {args.limit}")
    tuning = Tuning(rungs, args.ticket_threshold, args.invoice_threshold, args.small_schema, args.skip_idle or None)
    return [TASKS[n] for n in names], tuning


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int, ItemOutcome], None]]:
    """A rich progress bar on a terminal, one plain line per item otherwise."""
    if sys.stdout.isatty():
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            pass
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, transient=False) as bar:
                task_id = bar.add_task(label, total=total)

                def advance(i: int, o: ItemOutcome) -> None:
                    who = o.result.answered_by or "-"
                    bar.update(task_id, advance=1, description=f"{label} ({o.id} -> {who})")

                yield advance
                return

    def line(i: int, o: ItemOutcome) -> None:
        mark = "right" if o.correct else "WRONG"
        path = " > ".join(a.rung if a.outcome != "skipped" else f"({a.rung} skipped)" for a in o.result.attempts)
        print(f"  {label} {i + 1}/{total} {o.id}: {path} -> {o.result.answered_by} ({mark})", flush=True)

    yield line


async def _demo(tasks: list[Task], tuning: Tuning, args: argparse.Namespace, log_path: Path) -> str:
    runs: list[tuple[TaskRun, TaskRun | None]] = []
    t0 = time.perf_counter()
    models = [m for m in DEFAULT_MODELS if m.name in tuning.rungs]  # start only the rungs in use
    async with LocalLadder(models, cache_dir=args.cache_dir, n_threads=args.threads) as local:
        print(f"local ladder up in {time.perf_counter() - t0:.1f} s: {local}", flush=True)
        for task in tasks:
            items = load_items(task)[: args.limit]
            with _progress(f"{task.name}: cascade", len(items)) as progress:
                cascade = await run_task(
                    task, items, build_ladder(local, task, tuning), mode="cascade", log=str(log_path),
                    progress=progress, skip_idle=tuning.skip_idle,
                )  # fmt: skip
            baseline = None
            if not args.no_baseline:
                with _progress(f"{task.name}: {tuning.rungs[-1]} alone", len(items)) as progress:
                    baseline = await run_task(
                        task, items, build_ladder(local, task, tuning, top_only=True), mode="top_only",
                        progress=progress,
                    )  # fmt: skip
            runs.append((cascade, baseline))
    sources = {m.name: m.price_source for m in DEFAULT_MODELS}
    return full_report(runs, sources, str(log_path), args.threads)


def main(args: argparse.Namespace) -> int:
    tasks, tuning = _parse(args)
    log_path = Path(args.log or f"out/cascade-demo-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(_demo(tasks, tuning, args, log_path))
    except (LocalLadderUnavailable, ModelChecksumError, LocalServerError) as e:
        print(f"cascade demo: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cascade demo: interrupted; the local servers were stopped", file=sys.stderr)
        return 130
    print()
    print(report)
    print(f"\n== the escalation log, summarised (the same as `cascade stats {log_path} --by metadata.task`)")
    print_log_summary(log_path)
    return 0


def print_log_summary(log_path: Path) -> None:
    """End with what a user would run next on their own log: ``cascade stats``, per task."""
    from ..stats import build_report
    from ..stats._render import render

    render(build_report([str(log_path)], group_by="task").data, ["rung", "reason", "metadata.task"], use_rich=False)
