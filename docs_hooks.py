"""MkDocs hook: the reference pages' generated parts, rendered from the code at build time so they cannot drift.

A page asks for one with a line ``<!-- generated: NAME -->``; NAME is a key of ``GENERATORS``. The
``runnable`` tag of code fences (read by the docs test) is dropped before Markdown sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from typing import Any

MARKER = re.compile(r"^<!-- generated: (?P<name>[a-z_-]+) -->$", re.M)
RUNNABLE = re.compile(r"^(?P<fence> *```python) runnable(?: local)?[ \t]*$", re.M)
"""The tag that tests/test_docs_examples.py runs a block by; Markdown would not see a code block behind it."""


def cli_reference() -> str:
    """``cascade --help`` and each subcommand's ``--help``, as argparse prints them."""
    from cascade._cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: make the page the same everywhere
    parser = build_parser()
    parts = ["```text", parser.format_help().rstrip(), "```"]
    for action in parser._subparsers._group_actions if parser._subparsers else []:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                parts += ["", f"## `cascade {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def event_schema() -> str:
    """The escalation log's events: the JSON Schema derived from the typed definitions when the package
    has them, else the schema as ``cascade._events`` states it."""
    from cascade import _events

    derive: Callable[[], Any] | None = getattr(_events, "event_json_schema", None)
    if derive is not None:
        return "```json\n" + json.dumps(derive(), indent=2, sort_keys=False) + "\n```"
    doc = (_events.__doc__ or "").strip()
    return f"Schema version {_events.SCHEMA_VERSION}, as defined in `cascade/_events.py`:\n\n```text\n{doc}\n```"


GENERATORS: dict[str, Callable[[], str]] = {"cli": cli_reference, "events": event_schema}


def on_page_markdown(markdown: str, **_: Any) -> str:
    def render(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise KeyError(f"docs: unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(render, RUNNABLE.sub(r"\g<fence>", markdown))
