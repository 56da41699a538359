"""``python -m cascade.testing --port 8123``: a standalone test server for benchmarks. Every model gets
an instant ``Reply(content=...)``; requests are not recorded, so memory stays flat under load."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._reply import Reply
from ._server import TestServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port (default 8123)")
    parser.add_argument("--content", default="ok", help="the answer's text (default: ok)")
    parser.add_argument("--api-key", default=None, help="require this key (default: none)")
    args = parser.parse_args(argv)
    server = TestServer(args.host, args.port, record=False)
    server.default(Reply(content=args.content))
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
