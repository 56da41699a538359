"""What ``cascade serve`` serves: ``module:attribute`` (a :class:`Gateway`, a :class:`Cascade`, a dict
of them, or a factory returning one, as uvicorn finds apps), or a TOML file describing a no-code ladder.

The TOML file (every key but the rungs' is optional)::

    [gateway]
    on_exhausted = "best_effort"        # or "error" (HTTP 422 with the reasons)
    redis = "redis://127.0.0.1:6379/0"  # shared state for several replicas
    sticky_ttl_s = 3600                 # a conversation that escalated starts where it ended up
    deadline_s = 20                     # default latency budget of each request

    [[gateway.keys]]                    # from `cascade serve --new-key NAME`
    name = "team-a"
    sha256 = "9f86d0..."
    daily_usd = 5.0

    [cascades.tickets]                  # the model "cascade/tickets"
    budget_usd = 0.01
    checks = { json_schema = { type = "object", required = ["label"] }, tool_calls = true }
    breaker = { failures = 5, window_s = 30, cooldown_s = 30 }   # shared by replicas through Redis
    skip_idle = { after = 20, probe_every = 10 }

    [[cascades.tickets.rungs]]
    name = "mini"
    provider = "openai"                 # or "anthropic"
    base_url = "https://api.example.com/v1"
    api_key_env = "OPENAI_API_KEY"
    model = "gpt-4o-mini"
    price_in = 0.15                     # USD per million tokens
    price_out = 0.60
    reasks = 0
    params = { temperature = 0 }

``checks`` (on a cascade, or on one rung) takes ``json_schema`` (a schema table), ``regex`` (a
pattern), ``choice`` (a list of labels), ``min_confidence`` (a logprob threshold) and ``tool_calls``
(``true``, or ``"required"``); all given must pass.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._config import CircuitBreaker, RequestParams, SkipIdle
from .._engine import Cascade
from .._errors import ConfigError
from .._ladder import Ladder, Rung
from .._providers import Anthropic, OpenAICompatible
from .._sticky import StickySessions
from ..validators import Choice, Confidence, JsonSchema, Regex, ToolCalls, Validator
from ._keys import ApiKey

Target = Any
"""A Gateway, a Cascade or a mapping of names to cascades."""

_CHECKS = ("json_schema", "regex", "choice", "min_confidence", "tool_calls")


def import_target(spec: str) -> Target:
    """``package.module:attribute`` (dots for nested attributes), called when it is a factory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"APP: expected 'module:attribute' or a .toml file, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as uvicorn: the app's module is found from where it is started
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"APP: cannot import module {module_name!r}: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"APP: module {module_name!r} has no attribute {attribute!r}") from None
    from ._gateway import Gateway

    if callable(target) and not isinstance(target, (Cascade, Gateway)):
        target = target()
    if not isinstance(target, (Cascade, Gateway, Mapping)):
        raise ConfigError(
            f"APP: {spec!r} is a {type(target).__name__}; expected a Gateway, a Cascade or a dict of them"
        )
    return target


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            config: dict[str, Any] = tomllib.load(f)
            return config
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def gateway_options(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``[gateway]`` table, checked: keys become :class:`ApiKey` s."""
    table = config.get("gateway", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [gateway] must be a table, got {table!r:.60}")
    known = {"on_exhausted", "redis", "keys", "sticky_ttl_s", "deadline_s", "request_reserve_usd"}
    _only(table, known, f"{where}: [gateway]")
    out = dict(table)
    if "keys" in out:
        out["keys"] = read_keys(out["keys"], f"{where}: gateway.keys")
    return out


def read_keys(items: Any, where: str) -> list[ApiKey]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of {{name, sha256, daily_usd}} tables, got {items!r:.60}")
    keys = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}[{i}]: expected a table, got {item!r:.60}")
        _only(item, {"name", "sha256", "daily_usd"}, f"{where}[{i}]")
        keys.append(ApiKey(str(item.get("name", "")), str(item.get("sha256", "")), item.get("daily_usd")))
    return keys


def cascades_from_toml(
    config: Mapping[str, Any], where: str, *, sticky_ttl_s: float | None = None, deadline_s: float | None = None
) -> dict[str, Cascade]:
    """The ``[cascades.NAME]`` tables; ``sticky_ttl_s`` and ``deadline_s`` (from ``[gateway]``) are
    the default of each, which a table may set for itself."""
    tables = config.get("cascades")
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(f"{where}: expected at least one [cascades.NAME] table with [[cascades.NAME.rungs]]")
    defaults = {"sticky_ttl_s": sticky_ttl_s, "deadline_s": deadline_s}
    return {name: _cascade(table, f"{where}: cascades.{name}", defaults) for name, table in tables.items()}


def _cascade(table: Any, where: str, defaults: Mapping[str, Any]) -> Cascade:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {table!r:.60}")
    _only(table, {"rungs", "checks", "budget_usd", "log", "sticky_ttl_s", "deadline_s", "breaker", "skip_idle"}, where)
    settings = {**defaults, **{k: table[k] for k in defaults if k in table}}
    rungs = table.get("rungs")
    if not isinstance(rungs, list) or not rungs:
        raise ConfigError(f"{where}.rungs: expected at least one [[rungs]] table, got {rungs!r:.60}")
    ladder = Ladder([_rung(r, f"{where}.rungs[{i}]") for i, r in enumerate(rungs)])
    ttl = settings["sticky_ttl_s"]
    return Cascade(
        ladder,
        validators=_checks(table.get("checks"), f"{where}.checks"),
        budget_usd=table.get("budget_usd"),
        log=table.get("log"),
        deadline_s=settings["deadline_s"],
        gates=[StickySessions(ttl)] if ttl else [],
        breaker=_policy(
            CircuitBreaker, table.get("breaker"), f"{where}.breaker", {"failures", "window_s", "cooldown_s"}
        ),
        skip_idle=_policy(SkipIdle, table.get("skip_idle"), f"{where}.skip_idle", {"after", "probe_every"}),
    )


def _policy(kind: Any, table: Any, where: str, known: set[str]) -> Any:
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table such as {{ {sorted(known)[0]} = ... }}, got {table!r:.60}")
    _only(table, known, where)
    return kind(**table)


def _rung(table: Any, where: str) -> Rung:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {table!r:.60}")
    fields = {
        "name",
        "provider",
        "base_url",
        "api_key_env",
        "model",
        "price_in",
        "price_out",
        "reasks",
        "params",
        "checks",
        "timeout_s",
    }
    _only(table, fields, where)
    kind = table.get("provider", "openai")
    base_url = table.get("base_url")
    options: dict[str, Any] = {"api_key_env": table.get("api_key_env")}
    if "timeout_s" in table:
        options["timeout_s"] = table["timeout_s"]
    if kind == "openai":
        if not isinstance(base_url, str):
            raise ConfigError(f"{where}.base_url: an openai rung needs a base_url such as 'http://127.0.0.1:8080/v1'")
        provider: Any = OpenAICompatible(base_url, **options)
    elif kind == "anthropic":
        provider = Anthropic(
            base_url or "https://api.anthropic.com",
            **{"api_key_env": "ANTHROPIC_API_KEY", **{k: v for k, v in options.items() if v}},
        )
    else:
        raise ConfigError(f"{where}.provider: expected 'openai' or 'anthropic', got {kind!r}")
    fields_: dict[str, Any] = {
        "name": table.get("name", table.get("model")),
        "provider": provider,
        "model": table.get("model"),
        "price_in": table.get("price_in"),
        "price_out": table.get("price_out"),
        "reasks": table.get("reasks", 0),
        "validators": _checks(table.get("checks"), f"{where}.checks"),
    }
    try:
        return Rung(params=RequestParams(**table.get("params", {})), **fields_)
    except (ValueError, TypeError) as exc:
        lines = str(exc).splitlines()
        raise ConfigError(f"{where}: " + " ".join(line.strip() for line in lines[:3])) from None


def _checks(table: Any, where: str) -> list[Validator] | None:
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table such as {{ json_schema = {{...}} }}, got {table!r:.60}")
    _only(table, set(_CHECKS), where)
    out: list[Validator] = []
    if "json_schema" in table:
        out.append(JsonSchema(table["json_schema"]))
    if "regex" in table:
        out.append(Regex(table["regex"]))
    if "choice" in table:
        out.append(Choice(table["choice"]))
    if "min_confidence" in table:
        out.append(Confidence(table["min_confidence"]))
    calls = table.get("tool_calls")
    if calls not in (None, False, True, "required"):
        raise ConfigError(f"{where}.tool_calls: expected true or 'required', got {calls!r}")
    if calls:
        out.append(ToolCalls(required=calls == "required"))
    return out


def _only(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key (value {table[unknown[0]]!r:.60}); known: {sorted(known)}"
        )


def is_toml(spec: str) -> bool:
    return spec.endswith(".toml") and Path(spec).is_file()
