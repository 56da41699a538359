"""A stand-in for ``llama-server`` (same command line, same endpoints), for the ladder's lifecycle tests
where no model is needed: ``CASCADE_LLAMA_SERVER`` points at a launcher of this script.

``FAKE_LLAMA_MODE``: ``ok`` answers every completion with ``FAKE_LLAMA_REPLY``; ``crash`` dies of
SIGSEGV on its first completion (what a runtime built for another CPU does); ``exit`` exits with
status 3 before it listens. Every request body is appended, one JSON line each, to
``FAKE_LLAMA_RECORD`` when set.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--alias")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args, _ = parser.parse_known_args()
    mode = os.environ.get("FAKE_LLAMA_MODE", "ok")
    print(f"fake llama-server: model {args.model}, alias {args.alias}, mode {mode}", file=sys.stderr, flush=True)
    if mode == "exit":
        print("fake llama-server: error: failed to load model", file=sys.stderr, flush=True)
        sys.exit(3)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: object) -> None:
            print(f"fake llama-server: {format % a}", file=sys.stderr, flush=True)

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": args.alias, "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            record = os.environ.get("FAKE_LLAMA_RECORD")
            if record:
                with open(record, "a") as f:
                    f.write(json.dumps(body) + "\n")
            if mode == "crash":
                print("fake llama-server: ldtilecfg with garbage, crashing", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGSEGV)
            reply = os.environ.get("FAKE_LLAMA_REPLY", "OK")
            self._send(
                200,
                {
                    "model": args.alias,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 2},
                },
            )

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
