"""User regexes (``Regex``, a JSON schema's ``pattern`` and ``patternProperties``) matched in bounded time.

Python's ``re`` backtracks: ``^(a+)+$`` against 27 characters of model output takes seconds, and a stalled
check stalls every request sharing the loop. With the ``re2`` extra (``google-re2``) installed, schema
patterns run on RE2, whose time is linear in the text. Without it, or for a pattern RE2 cannot compile
(lookaround, backreferences), a pattern that can backtrack exponentially (a repeat holding another repeat
or an alternation, the shapes behind catastrophic backtracking) is refused with a ConfigError at
construction; other patterns run on ``re``.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._errors import ConfigError

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _parser() -> Any:
    try:
        return importlib.import_module("re._parser")  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        return importlib.import_module("sre_parse")


def can_backtrack_exponentially(pattern: str) -> bool:
    """True when a repeat (``*``, ``+``, ``{n,}``...) contains another repeat or an alternation."""
    try:
        parsed = _parser().parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return False  # not a valid pattern: jsonschema reports it

    def walk(items: Any, under_repeat: bool) -> bool:
        for op, arg in items:
            name = str(op)
            if name in _REPEATS:
                _low, high, sub = arg
                if under_repeat:
                    return True
                if walk(sub, high > 1):
                    return True
            elif name == "BRANCH":
                if under_repeat:
                    return True
                if any(walk(b, under_repeat) for b in arg[1]):
                    return True
            elif name == "SUBPATTERN":
                if walk(arg[-1], under_repeat):
                    return True
            elif name in ("ASSERT", "ASSERT_NOT") and walk(arg[1], under_repeat):
                return True
        return False

    return walk(parsed, False)


@functools.lru_cache(maxsize=1)
def _re2() -> Any:
    try:
        import re2
    except ImportError:
        return None
    return re2


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Callable[[str], Any]:
    re2 = _re2()
    if re2 is not None:
        options = re2.Options()
        options.log_errors = False
        try:
            return re2.compile(pattern, options).search  # type: ignore[no-any-return]
        except Exception:
            pass
    return re.compile(pattern).search


def search(pattern: str, text: str) -> bool:
    """``re.search`` semantics, on RE2 when it is installed and can take the pattern."""
    return _compiled(pattern)(text) is not None


def schema_patterns(schema: Any) -> Iterator[str]:
    """Every regex in a schema: ``pattern`` values and ``patternProperties`` keys, at any depth."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            elif key == "patternProperties" and isinstance(value, Mapping):
                yield from (k for k in value if isinstance(k, str))
            if isinstance(value, (Mapping, list)):
                yield from schema_patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from schema_patterns(item)


def runs_on_re2(pattern: str) -> bool:
    return type(getattr(_compiled(pattern), "__self__", None)).__module__.split(".")[0] == "re2"


def check_pattern(pattern: str, where: str, *, on_re: bool = False) -> None:
    """Refuse a pattern that would run on ``re`` (``on_re``: whatever is installed) and can backtrack
    exponentially."""
    if not can_backtrack_exponentially(pattern) or (not on_re and runs_on_re2(pattern)):
        return
    if on_re:
        advice = "with flags it runs on Python's re (give the flags inline, e.g. (?i), to run it on RE2)"
    elif _re2() is not None:
        advice = "RE2 cannot compile it (lookaround or backreference)"
    else:
        advice = "install cascade-router[re2] to run it on RE2 (linear time)"
    raise ConfigError(
        f"{where}: pattern {pattern!r} can backtrack exponentially on Python's re (a repeat inside a repeat "
        f"or over an alternation); {advice}, or rewrite it"
    )


def check_patterns(schema: Any, where: str) -> None:
    for pattern in schema_patterns(schema):
        check_pattern(pattern, where)


def compile_bounded(pattern: str) -> Any:
    """A compiled pattern (``search``/``fullmatch``/``pattern``), on RE2 when it can take it."""
    search = _compiled(pattern)
    return getattr(search, "__self__", None) or re.compile(pattern)


@functools.lru_cache(maxsize=8)
def bounded_validator(cls: Any) -> Any:
    """``cls`` (a jsonschema validator class) with pattern keywords matched by :func:`search`."""
    from jsonschema import validators
    from jsonschema.exceptions import ValidationError

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not search(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for k, v in instance.items():
                if search(patrn, k):
                    yield from validator.descend(v, subschema, path=k, schema_path=patrn)

    def additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        properties = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extras = {p for p in instance if p not in properties and not any(search(patrn, p) for patrn in patterns)}
        if validator.is_type(ap, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], ap, path=extra)
        elif not ap and extras:
            shown = ", ".join(repr(e) for e in sorted(extras, key=str))
            yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")

    return validators.extend(  # type: ignore[no-untyped-call]
        cls,
        {"pattern": pattern, "patternProperties": pattern_properties, "additionalProperties": additional_properties},
    )
