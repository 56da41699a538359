"""Import time of ``cascade`` against ``litellm`` (and the libraries cascade cannot do without).

    .venv-bench/bin/python benchmarks/import_time.py [--runs 7] [--modules cascade,litellm,httpx,pydantic]

Each run is a fresh ``python -X importtime -c "import MODULE"``; the figure is the cumulative time of
the module's own line (everything its import pulled in that was not loaded at interpreter start),
median and min over runs, plus the sum of all lines (interpreter start-up imports included). The
biggest contributors of the last cascade run are listed, to see what dominates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys


def importtime(module: str) -> tuple[float, float, list[tuple[float, str]]]:
    """(cumulative ms of ``module``'s line, sum of all self times in ms, [(cumulative ms, name)])."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # litellm: no network fetch at import
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stderr
    own = total = 0.0
    rows: list[tuple[float, str]] = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        self_us, cum_us, name = float(parts[0].split(":")[1]), float(parts[1]), parts[2]
        total += self_us / 1000
        rows.append((cum_us / 1000, name.rstrip()))
        if name.strip() == module:  # the outermost line (a package may re-import its own name inside)
            own = max(own, cum_us / 1000)
    return own, total, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--modules", default="cascade,litellm,httpx,pydantic,asyncio")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    last_rows: list[tuple[float, str]] = []
    print(f"{'module':<10} {'import ms (median, min-max)':>30} {'all lines summed ms':>22}")
    for module in args.modules.split(","):
        try:
            runs = [importtime(module) for _ in range(args.runs)]
        except subprocess.CalledProcessError:
            print(f"{module:<10} not installed here")
            continue
        own = [r[0] for r in runs]
        total = [r[1] for r in runs]
        print(
            f"{module:<10} {statistics.median(own):12.0f} ({min(own):.0f}-{max(own):.0f}) "
            f"{statistics.median(total):14.0f} ({min(total):.0f}-{max(total):.0f})"
        )
        if module == "cascade":
            last_rows = runs[-1][2]
    if last_rows:
        print("\nlargest packages imported by `import cascade` (cumulative ms, last run):")
        packages = [r for r in last_rows if "." not in r[1].strip() and r[1].strip() != "cascade"]
        for cum, name in sorted(packages, reverse=True)[: args.top]:
            print(f"  {cum:8.1f}  {name.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
