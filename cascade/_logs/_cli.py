"""``cascade schema``: print the JSON Schema of the log's lines (generated from ``cascade._events``)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema of one escalation-log line",
        description="Print the JSON Schema of one line of the escalation log (every event kind), as shipped "
        "in the package as cascade/event-schema.json.",
    )
    parser.set_defaults(func=run)


def run(_args: argparse.Namespace) -> int:
    from .._events import event_json_schema

    print(json.dumps(event_json_schema(), indent=2, sort_keys=True))
    return 0
