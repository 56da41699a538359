"""What batch progress costs: CPU of ``map`` with each kind of progress, against ``progress=False``.

    .venv/bin/python benchmarks/progress_overhead.py [--items 5000] [--rounds 5]

An in-process provider that answers at once (no sockets), so the router's own work per item is all
there is and the progress work is as large a share of it as it can be. Printed per configuration: the
median process CPU per item over rounds, and its ratio to ``progress=False`` measured in the same run.
The rich bar draws on a real pseudo-terminal (read and discarded by a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pty
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from _bench import Instant

from cascade import BatchProgress, Cascade, Rung

ITEMS: list[Any] = []


def drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def measure(cascade: Cascade, kwargs: dict[str, Any], stderr: Any) -> float:
    saved = sys.stderr
    sys.stderr = stderr
    try:
        gc.collect()
        c0 = time.process_time()
        asyncio.run(cascade.map(ITEMS, concurrency=16, **kwargs))
        return time.process_time() - c0
    finally:
        sys.stderr = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ITEMS.extend([{"role": "user", "content": f"item {i}"}] for i in range(args.items))
    cascade = Cascade([Rung(name="only", provider=Instant(yield_each=True), model="m", price_in=1, price_out=1)])
    master, slave = pty.openpty()
    threading.Thread(target=drain, args=(master,), daemon=True).start()
    tty = os.fdopen(slave, "w", encoding="utf-8")
    devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed at the end
    seen: list[int] = []
    callback: Callable[[BatchProgress], None] = lambda p: seen.append(p.done)  # noqa: E731
    configs: dict[str, tuple[dict[str, Any], Any]] = {
        "progress=False (baseline)": ({"progress": False}, devnull),
        "on_progress callback": ({"progress": False, "on_progress": callback}, devnull),
        "progress=True, not a terminal (lines)": ({"progress": True}, devnull),
        "default on a terminal (rich bar)": ({}, tty),
    }
    measure(cascade, {"progress": False}, devnull)  # warm-up
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, (kwargs, stream) in configs.items():  # interleaved, so drift hits every config alike
            cpu[name].append(measure(cascade, kwargs, stream))
    base = statistics.median(cpu["progress=False (baseline)"])
    print(f"{args.items} items, {args.rounds} rounds; CPU per item (median) and ratio to progress=False")
    for name, values in cpu.items():
        med = statistics.median(values)
        print(f"  {name:<40} {med / args.items * 1e6:8.1f} us/item   x{med / base:.3f}")
    assert len(seen) == args.items * args.rounds
    devnull.close()
    tty.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
