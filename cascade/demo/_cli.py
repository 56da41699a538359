"""``cascade demo``: start the offline ladder, run the two workloads through a 3-rung cascade and
through the top rung alone, print the report and where the escalation log is."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..local import LocalLadder, LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ..local._models import DEFAULT_MODELS
from ..local._server import SERVER_KINDS
from ._calibrate import (
    SPLITS,
    calibration_dataset,
    load_policies,
    policy_folder,
    policy_path,
    split_items,
    tune,
    tune_argv,
    write_dataset,
)
from ._report import DeadRung, full_report, refuse_dead_rungs, split_note
from ._run import ItemOutcome, TaskRun, Tuning, build_ladder, calibration_ladder, run_task
from ._tasks import INVOICE_TASK, TICKET_TASK, Task, load_items

TASKS = {"tickets": TICKET_TASK, "invoices": INVOICE_TASK}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run a real 3-rung cascade on local models (needs `make local`)",
        description=__doc__,
    )
    p.add_argument("--tasks", default="tickets,invoices", help="comma-separated: tickets, invoices")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="report",
        help="which items: report (the half the shipped policies were NOT fitted on), calibration, all",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="run every rung alone on the calibration split, record it as a dataset (in --calibration-data) "
        "and fit each task's policy with `cascade tune`, written to --policies",
    )
    p.add_argument("--policies", default=None, help="folder of policy-<task>.json (default: the shipped demo/data)")
    p.add_argument(
        "--calibration-data", default="data/demo-calibration", help="where --calibrate writes its recorded dataset"
    )
    p.add_argument("--server", choices=SERVER_KINDS, default="native", help="llama.cpp server (native: parallel)")
    p.add_argument("--parallel", type=int, default=4, help="request slots per native server")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (cascade and baseline alike)")
    p.add_argument("--rungs", default="small,medium,large", help="local rungs, cheapest first")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of each task")
    p.add_argument(
        "--ticket-threshold", type=float, default=None, help="a hand-set ticket threshold instead of the policy"
    )
    p.add_argument(
        "--invoice-threshold",
        type=float,
        default=None,
        help="instead of the policy: Confidence(T) over the invoice's value tokens (all cheap rungs)",
    )
    p.add_argument(
        "--small-schema",
        action="store_true",
        help="constrain the small rung's decoding by the schema too (its confidence then carries no signal)",
    )
    p.add_argument(
        "--skip-idle",
        type=int,
        default=10,
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
    for flag in ("threads", "parallel", "concurrency"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"cascade demo: --{flag} must be >= 1, got {getattr(args, flag)}")
    if args.skip_idle < 0:
        raise SystemExit(f"cascade demo: --skip-idle must be >= 0, got {args.skip_idle}")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"cascade demo: --limit must be >= 1, got {args.limit}")
    thresholds: dict[str, dict[str, float | None]] = {}
    fitted = []
    for name in names:
        override = args.ticket_threshold if name == "tickets" else args.invoice_threshold
        if override is not None:
            thresholds[name] = dict.fromkeys(rungs[:-1], override)
        elif not args.calibrate:
            fitted.append(name)
    folder = Path(args.policies) if args.policies else None
    try:
        policies = load_policies(fitted, folder)
    except ConfigError as e:
        raise SystemExit(f"cascade demo: --policies: {e} (fit them with `cascade demo --calibrate`)") from None
    for name, policy in policies.items():
        unknown = [m for m in policy.models if m not in known]
        if unknown:
            raise SystemExit(f"cascade demo: {policy_path(name, folder)}: rungs {unknown} are not among {known}")
    tuning = Tuning(rungs, thresholds, args.small_schema, args.skip_idle or None, policies)
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


def _ladder(tuning: Tuning, args: argparse.Namespace, tasks: list[Task]) -> LocalLadder:
    used = {r for t in tasks for r in tuning.ladder_for(t.name)} if not args.calibrate else set(tuning.rungs)
    models = [m for m in DEFAULT_MODELS if m.name in used]  # start only the rungs in use
    return LocalLadder(
        models, server=args.server, parallel=args.parallel, cache_dir=args.cache_dir, n_threads=args.threads
    )


def _up(local: LocalLadder, t0: float) -> None:
    print(f"local ladder up and self-tested in {time.perf_counter() - t0:.1f} s: {local}", flush=True)
    print(f"server logs: {local.log_dir}", flush=True)


async def _warm(local: LocalLadder, task: Task, names: Sequence[str]) -> None:
    """Every slot of every rung the task uses holds its system prompt before the clock starts, so the
    cascade and the top rung alone both run warm (otherwise whichever runs second inherits the
    other's warm slots, and each rung's first requests pay for the prompt cold)."""
    seconds = await local.awarm(task.messages(""), names)
    took = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    print(f"{task.name}: every request slot warmed with the task's system prompt ({took}; not in any wall time)")


async def _demo(tasks: list[Task], tuning: Tuning, args: argparse.Namespace, log_path: Path) -> str:
    runs: list[tuple[TaskRun, TaskRun | None]] = []
    t0 = time.perf_counter()
    async with _ladder(tuning, args, tasks) as local:
        _up(local, t0)
        for task in tasks:
            items = split_items(load_items(task), args.split)[: args.limit]
            await _warm(local, task, tuning.ladder_for(task.name))
            ladder = build_ladder(local, task, tuning)
            with _progress(f"{task.name}: cascade", len(items)) as progress:
                cascade = await run_task(
                    task, items, ladder, mode="cascade", log=str(log_path),
                    progress=progress, skip_idle=tuning.skip_idle, concurrency=args.concurrency, local=local,
                )  # fmt: skip
            refuse_dead_rungs(cascade)
            baseline = None
            if [r.name for r in ladder.rungs] == list(tuning.rungs[-1:]):  # the same requests to the same rung
                print(f"{task.name}: the ladder is {tuning.rungs[-1]} alone; its run is the baseline too (run once)")
                baseline = None if args.no_baseline else cascade
            elif not args.no_baseline:
                with _progress(f"{task.name}: {tuning.rungs[-1]} alone", len(items)) as progress:
                    baseline = await run_task(
                        task, items, build_ladder(local, task, tuning, top_only=True), mode="top_only",
                        progress=progress, concurrency=args.concurrency, local=local,
                    )  # fmt: skip
                refuse_dead_rungs(baseline)
            runs.append((cascade, baseline))
    sources = {m.name: m.price_source for m in DEFAULT_MODELS}
    note = split_note(args.split, args.policies, tuning, [t.name for t in tasks])
    vendor = {m.name: m.vendor_prices for m in DEFAULT_MODELS if m.vendor_prices}
    vendor_source = "; ".join(sorted({m.vendor_price_source for m in DEFAULT_MODELS if m.name in vendor}))
    return full_report(
        runs, sources, str(log_path), args.threads, note=note, vendor_prices=vendor, vendor_source=vendor_source
    )


async def _calibrate(tasks: list[Task], tuning: Tuning, args: argparse.Namespace) -> None:
    """Every rung alone on the calibration split, recorded as a dataset; then ``cascade tune`` fits the
    task's policy on it (the cheapest ladder as accurate as the top rung alone on those items)."""
    t0 = time.perf_counter()
    folder = Path(args.policies) if args.policies else policy_folder()
    async with _ladder(tuning, args, tasks) as local:
        _up(local, t0)
        for task in tasks:
            items = split_items(load_items(task), "calibration")[: args.limit]
            await _warm(local, task, tuning.rungs)
            runs = {}
            for name in tuning.rungs:
                with _progress(f"{task.name}: {name} alone (calibration)", len(items)) as progress:
                    runs[name] = await run_task(
                        task, items, calibration_ladder(local, task, tuning, name), mode="calibration",
                        progress=progress, concurrency=args.concurrency, local=local,
                    )  # fmt: skip
                refuse_dead_rungs(runs[name])
            dataset = write_dataset(task, calibration_dataset(task, items, runs), Path(args.calibration_data))
            out = _relative(policy_path(task.name, folder))
            print(f"{task.name}: {len(items)} calibration items recorded in {dataset}; fitting:")
            print("  cascade " + " ".join(tune_argv(dataset, tuning.rungs, out)))
            policy, printed = tune(dataset, tuning.rungs, out)
            print("\n".join("  " + line for line in printed.strip().splitlines()))
            print(f"{task.name}: policy {' > '.join(policy.models)} written to {out}", flush=True)


def _relative(path: Path) -> Path:
    """``path`` from the current folder when it is below it (so the printed command reads short)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def main(args: argparse.Namespace) -> int:
    tasks, tuning = _parse(args)
    log_path = Path(args.log or f"out/cascade-demo-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if args.calibrate:
            asyncio.run(_calibrate(tasks, tuning, args))
            return 0
        report = asyncio.run(_demo(tasks, tuning, args, log_path))
    except (LocalLadderUnavailable, ModelChecksumError, LocalServerError, DeadRung) as e:
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
