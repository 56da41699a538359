"""``python -m cascade.testing --port 8123``: a standalone test server for benchmarks. Every model gets
an instant ``Reply(content=...)``; requests are not recorded, so memory stays flat under load.
``--fault-rate 0.1 --seed 1 [--faults reset,server_error]`` replaces that share of answers by faults."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._reply import Reply
from ._script import DEFAULT_FAULTS
from ._server import TestServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port (default 8123)")
    parser.add_argument("--content", default="ok", help="the answer's text (default: ok)")
    parser.add_argument("--api-key", default=None, help="require this key (default: none)")
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT, so several server processes can share one fixed --port (Linux)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of answers that are faults (0..1)")
    parser.add_argument("--faults", default=",".join(DEFAULT_FAULTS), help="comma-separated fault names")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault sequence")
    args = parser.parse_args(argv)
    server = TestServer(args.host, args.port, record=False, reuse_port=args.reuse_port)
    server.default(Reply(content=args.content))
    if args.fault_rate:
        try:
            server.fault_rate(args.fault_rate, seed=args.seed, faults=[f for f in args.faults.split(",") if f])
        except ValueError as exc:
            parser.error(str(exc))
    if args.api_key:
        server.require_api_key(args.api_key)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    print(server.base_url, flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
