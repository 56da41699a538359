"""Peak memory and time of ``cascade stats`` on a 1,000,000-event log.

    python benchmarks/stats_memory.py [--events 1000000] [--keep DIR] [--gzip]

Writes a synthetic schema-v1 log (70% answered by the cheapest rung, 20% escalated once, 10% twice;
interleaved 16 requests at a time like a concurrent replica), then runs ``cascade stats --json`` in a
child process (with and without ``--compare 1h --by metadata.tenant``) and prints its peak RSS
(``ru_maxrss`` of the child) and wall time. Speed depends on the machine; the point is that memory stays
flat as the log grows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

RUNGS = [("small", "small-1", 0.1, 0.4), ("medium", "medium-1", 1.0, 4.0), ("large", "large-1", 10.0, 30.0)]
TOP = {"name": "large", "model": "large-1", "price_in": 10.0, "price_out": 30.0}
NAMES = [r[0] for r in RUNGS]


def request_events(i: int, ts: float, rng: random.Random) -> list[dict[str, Any]]:
    u = rng.random()
    depth = 1 if u < 0.7 else 2 if u < 0.9 else 3
    rid = f"{i:012x}{rng.getrandbits(64):016x}"
    meta = {"tenant": f"t{i % 7}"}
    out: list[dict[str, Any]] = []
    cost = tin = tout = lat = 0.0
    for k in range(depth):
        name, model, pin, pout = RUNGS[k]
        t_in, t_out = rng.randint(200, 2000), rng.randint(20, 400)
        c = (t_in * pin + t_out * pout) / 1e6
        ms = rng.lognormvariate(5 + k, 0.5)
        accepted = k == depth - 1 and rng.random() < 0.97
        reasons = [] if accepted else [rng.choice(["schema", "consistency", "low_confidence"])]
        cost, tin, tout, lat = cost + c, tin + t_in, tout + t_out, lat + ms
        out.append({
            "event": "attempt", "v": 1, "ts": ts + lat / 1000, "request_id": rid, "attempt": k, "rung": name,
            "rung_index": k, "model": model, "outcome": "accepted" if accepted else "escalated",
            "reasons": reasons, "verdicts": [], "tokens_in": t_in, "tokens_out": t_out, "cost_usd": c,
            "latency_ms": round(ms, 3), "calls": 1, "retries": int(rng.random() < 0.02), "price_in": pin,
            "price_out": pout, "error": None, "metadata": meta,
        })  # fmt: skip
    last = out[-1]
    ok = last["outcome"] == "accepted"
    out.append({
        "event": "request", "v": 1, "ts": ts + lat / 1000 + 0.001, "request_id": rid,
        "outcome": "accepted" if ok else "exhausted", "accepted": ok, "answered_by": last["rung"] if ok else None,
        "escalations": depth - 1, "attempts": depth, "tokens_in": tin, "tokens_out": tout, "cost_usd": cost,
        "latency_ms": round(lat, 3), "reason": None if ok else last["reasons"][-1], "error": None,
        "budget_usd": None, "top_rung": TOP, "rungs": NAMES, "metadata": meta,
    })  # fmt: skip
    return out


def write_log(path: Path, n_events: int, compress: bool) -> int:
    rng = random.Random(42)
    f: IO[str] = gzip.open(path, "wt", encoding="utf-8") if compress else open(path, "w", encoding="utf-8")  # noqa: SIM115
    written = i = 0
    ts = 1_764_115_200.0
    with f:
        while written < n_events:
            batch = [request_events(i + j, ts + j * 0.05, rng) for j in range(16)]  # 16 in flight
            i += 16
            ts += 16 * 0.05
            lines = sorted((e for evs in batch for e in evs), key=lambda e: e["ts"])
            for e in lines:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
            written += len(lines)
    return written


def measure(args: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, child peak RSS in MB, and the JSON it printed."""
    code = (
        "import resource, sys, time\n"
        "from cascade._cli import main\n"
        "t = time.perf_counter(); rc = main(sys.argv[1:]); dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(f'\\n@@ {dt:.3f} {rss:.1f} {rc}', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    tail = [ln for ln in proc.stderr.splitlines() if ln.startswith("@@ ")]
    if not tail:
        raise SystemExit(f"cascade stats failed:\n{proc.stderr}")
    _, dt, rss, rc = tail[-1].split()
    if rc != "0":
        raise SystemExit(f"cascade stats exited {rc}:\n{proc.stderr}")
    return float(dt), float(rss), json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", help="directory to write the log in (kept); default a temporary one")
    ap.add_argument("--gzip", action="store_true", help="write the log gzipped")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if not a.keep else None
    folder = Path(a.keep or (tmp.name if tmp else "."))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / ("bench.jsonl.gz" if a.gzip else "bench.jsonl")
    t = time.perf_counter()
    n = write_log(log, a.events, a.gzip)
    print(f"wrote {n:,} events ({os.path.getsize(log) / 1e6:,.1f} MB) to {log} in {time.perf_counter() - t:.1f}s")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {sys.version.split()[0]}; this process' own peak RSS {base_rss:.0f} MB (not the child's)")
    for label, extra in (("summary", []), ("summary + --compare 1h + --by metadata.tenant",
                                           ["--compare", "1h", "--by", "metadata.tenant"])):  # fmt: skip
        dt, rss, data = measure(["stats", "--json", str(log), *extra])
        print(
            f"cascade stats ({label}): {data['requests']:,} requests, {data['attempts']:,} attempts, "
            f"peak RSS {rss:.1f} MB, {dt:.1f}s ({n / dt:,.0f} events/s); savings {data['savings_pct']}%"
        )
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
