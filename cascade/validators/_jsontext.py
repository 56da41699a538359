"""Finding the JSON in what a model wrote, and where its values are.

Real models wrap JSON in code fences or prose ("Here is the result: {...}"). Extraction is tolerant in
a bounded, documented way and never evaluates anything:

1. the whole text (stripped) parsed as JSON;
2. else the first ``` fenced block (an optional language tag such as ``json`` is skipped);
3. else a scan of the first :data:`MAX_SCAN` characters for ``{`` or ``[``: at each of at most
   :data:`MAX_STARTS` such positions, ``json.JSONDecoder.raw_decode`` tries to read one complete value
   there; the first that succeeds wins (so the first balanced top-level object or array).

The work is linear in the answer's length: the scan stops once its tries have read
:data:`MAX_WORK_FACTOR` times the answer's length in total (a bracket-heavy answer of megabytes would
otherwise be re-read from each start), and nesting past the parser's recursion limit is "not found",
never an exception.

:func:`value_spans` then finds, in valid JSON text, the character spans of the *values* (string
contents without quotes, numbers, ``true``/``false``/``null``), leaving out keys and punctuation;
the confidence check keeps only the tokens that overlap them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_SCAN = 20_000
"""Characters of a reply scanned for the start of a JSON object or array."""
MAX_STARTS = 50
"""``{``/``[`` positions tried before giving up (bounds the work on bracket-heavy prose)."""
MAX_WORK_FACTOR = 2
"""No try starts once the scan's tries have read this many times the answer's length (plus MAX_SCAN);
the last try reads at most the answer once more."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_OPEN = re.compile(r"[\[{]")


class JsonNotFound(ValueError):
    """No JSON value could be read from the text; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class Found:
    """A JSON value read from a text and the ``[start, end)`` character span it came from."""

    value: Any
    start: int
    end: int


def _snippet(text: str, n: int = 80) -> str:
    s = text.strip().replace("\n", " ")
    return repr(s if len(s) <= n else s[:n] + "...")


def find_json(text: str, *, max_scan: int = MAX_SCAN, max_starts: int = MAX_STARTS) -> Found:
    """Read the JSON value in ``text`` (see the module docstring for the rules); raise JsonNotFound."""
    stripped = text.strip()
    if not stripped:
        raise JsonNotFound("the answer is empty")
    lead = len(text) - len(text.lstrip())
    try:
        return Found(json.loads(stripped), lead, lead + len(stripped))
    except (ValueError, RecursionError):
        pass
    fence = _FENCE.search(text[:max_scan])
    if fence is not None:
        body = fence.group(2)
        inner = body.strip()
        start = fence.start(2) + (len(body) - len(body.lstrip()))
        try:
            return Found(json.loads(inner), start, start + len(inner))
        except (ValueError, RecursionError):
            pass  # a fence holding broken JSON: fall through to the scan (it may find a valid part)
    window = text[:max_scan]
    tried = 0
    pos = 0
    work = MAX_WORK_FACTOR * len(text) + max_scan
    while tried < max_starts and work > 0:
        m = _OPEN.search(window, pos)
        if m is None:
            break
        tried += 1
        try:
            value, end = _DECODER.raw_decode(text, m.start())
        except json.JSONDecodeError as exc:
            work -= exc.pos - m.start() + 1  # the decoder read this far before it failed
            pos = m.start() + 1
            continue
        except (ValueError, RecursionError):
            work -= 1
            pos = m.start() + 1
            continue
        return Found(value, m.start(), end)
    where = f"the first {max_scan} characters" if len(text) > max_scan else "the answer"
    gave_up = f"; gave up after reading {MAX_WORK_FACTOR}x the answer's length" if work <= 0 else ""
    raise JsonNotFound(
        f"no JSON object or array found in {where} ({tried} start position(s) tried{gave_up}): {_snippet(text)}"
    )


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Span:
    """A value's ``[start, end)`` characters in the JSON text and its path (keys and indexes)."""

    start: int
    end: int
    path: tuple[str | int, ...]


_WS = " \t\r\n"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _string_end(text: str, i: int) -> int:
    """Index just past the closing quote of the string opening at ``text[i] == '"'``."""
    j = i + 1
    while True:
        c = text[j]
        if c == "\\":
            j += 2
        elif c == '"':
            return j + 1
        else:
            j += 1


def value_spans(text: str, start: int = 0) -> list[Span]:
    """Spans of the scalar values in the valid JSON value that begins at ``text[start]`` (or after
    whitespace). String spans exclude the quotes. Raises ValueError on text that is not valid JSON."""
    while start < len(text) and text[start] in _WS:
        start += 1
    _DECODER.raw_decode(text, start)  # validates; the walk below may then assume well-formed input
    out: list[Span] = []
    # stack entries: [container, path, index-or-key, expecting_key]
    stack: list[list[Any]] = []
    path: tuple[str | int, ...] = ()
    i = start
    n = len(text)

    def here() -> tuple[str | int, ...]:
        if not stack:
            return ()
        top = stack[-1]
        return (*top[1], top[2])

    while i < n:
        c = text[i]
        if c in _WS or c == ":":
            i += 1
            continue
        if c == ",":
            top = stack[-1]
            if top[0] == "[":
                top[2] += 1
            else:
                top[3] = True
            i += 1
            continue
        if c in "{[":
            path = here()
            stack.append([c, path, 0 if c == "[" else "", c == "{"])
            i += 1
            continue
        if c in "}]":
            stack.pop()
            i += 1
            if not stack:
                break
            continue
        if c == '"':
            end = _string_end(text, i)
            if stack and stack[-1][0] == "{" and stack[-1][3]:
                stack[-1][2] = json.loads(text[i:end])
                stack[-1][3] = False
            else:
                out.append(Span(i + 1, end - 1, here()))
                if not stack:
                    break
            i = end
            continue
        m = _NUMBER.match(text, i)
        if m is not None and m.end() > i:
            out.append(Span(i, m.end(), here()))
            i = m.end()
        else:
            word = next(w for w in ("true", "false", "null") if text.startswith(w, i))
            out.append(Span(i, i + len(word), here()))
            i += len(word)
        if not stack:
            break
    return out
