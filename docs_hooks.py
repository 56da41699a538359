"""MkDocs hook: the reference pages' generated parts, rendered from the code at build time so they cannot drift.

A page asks for one with a line ``<!-- generated: NAME -->``; NAME is a key of ``GENERATORS``. The
``runnable`` tag of code fences (read by the docs test) is dropped before Markdown sees it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import typing
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
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += ["", f"## `cascade {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def _type_name(hint: Any) -> str:
    """A field's type as a reader of the log sees it (``str | None``, ``list[VerdictRecord]``)."""
    text = hint.__name__ if isinstance(hint, type) and not getattr(hint, "__args__", None) else repr(hint)
    text = re.sub(r"\btyping(_extensions)?\.", "", text).replace("NoneType", "None")
    text = re.sub(r"cascade\._events\.", "", text)
    return re.sub(r"Literal\[([^\]]*)\]", lambda m: " | ".join(m.group(1).split(", ")), text)


def _fields_table(cls: Any) -> str:
    from pydantic import TypeAdapter

    hints = typing.get_type_hints(cls)
    required = set(TypeAdapter(cls).json_schema().get("required", ()))
    rows = ["| field | type | |", "|---|---|---|"]
    for name, hint in hints.items():
        rows.append(f"| `{name}` | `{_type_name(hint)}` | {'' if name in required else 'optional'} |")
    return "\n".join(rows)


def event_schema() -> str:
    """One table per event kind and per record they carry, from the TypedDicts of ``cascade._events``,
    then the JSON Schema that ``event_json_schema()`` derives from them."""
    from cascade import _events

    parts = [f"Schema version **{_events.SCHEMA_VERSION}** (the `v` field of every event)."]
    records: dict[str, Any] = {}
    for kind, cls in _events.EVENT_TYPES.items():
        doc = inspect.cleandoc(cls.__doc__ or "") if cls.__doc__ != dict.__doc__ else ""
        parts += ["", f"### `{kind}`", "", doc, "", _fields_table(cls)]
        for hint in typing.get_type_hints(cls).values():
            for name in re.findall(r"\b([A-Z]\w+Record)\b", _type_name(hint)):
                records[name] = getattr(_events, name)
    for name, cls in records.items():
        parts += ["", f"### `{name}`", "", inspect.cleandoc(cls.__doc__ or ""), "", _fields_table(cls)]
    schema = json.dumps(_events.event_json_schema(), indent=2)
    parts += [
        "",
        "### The JSON Schema",
        "",
        "Derived by `cascade._events.event_json_schema()`:",
        "",
        "```json",
        schema,
        "```",
    ]
    return "\n".join(parts)


GENERATORS: dict[str, Callable[[], str]] = {"cli": cli_reference, "events": event_schema}


def on_page_markdown(markdown: str, **_: Any) -> str:
    def render(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise KeyError(f"docs: unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(render, RUNNABLE.sub(r"\g<fence>", markdown))
