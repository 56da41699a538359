"""``cascade serve APP``: run the gateway with uvicorn. ``cascade serve --new-key NAME`` makes a key."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from .._errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve cascades as an OpenAI-compatible HTTP API (the gateway)",
        description="Serve cascades behind POST /v1/chat/completions. APP is module:attribute (a Gateway, a "
        "Cascade, a dict of cascades, or a factory of one) or a gateway TOML file.",
    )
    p.add_argument("app", nargs="?", metavar="APP", help="module:attribute or path/to/gateway.toml")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--keys", metavar="FILE", help="TOML file of [[keys]] name/sha256/daily_usd (from --new-key)")
    p.add_argument("--no-auth", action="store_true", help="serve without keys (only on a loopback address)")
    p.add_argument("--on-exhausted", choices=["error", "best_effort"], help="what an unsatisfiable request gets")
    p.add_argument("--redis", metavar="URL", help="share sticky sessions and key spend in Redis (several replicas)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--new-key", metavar="NAME", help="print a new key and its [[keys]] entry, then exit")
    p.add_argument("--daily-usd", type=float, help="with --new-key: the key's daily spend cap")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.new_key:
        return _new_key(args.new_key, args.daily_usd)
    if not args.app:
        print("cascade serve: APP is required (module:attribute or a .toml file)", file=sys.stderr)
        return 2
    try:
        app = build(args)
    except ConfigError as exc:
        print(f"cascade serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def build(args: argparse.Namespace) -> Any:
    """The ASGI app for the parsed arguments; ConfigError names what is wrong."""
    from ._app import create_app
    from ._gateway import Gateway
    from ._load import cascades_from_toml as cascades_of
    from ._load import gateway_options, import_target, is_toml, read_keys, read_toml

    options: dict[str, Any] = {}
    if is_toml(args.app):
        config = read_toml(args.app)
        options = gateway_options(config, args.app)
        defaults = {k: options.pop(k) for k in ("sticky_ttl_s", "deadline_s") if k in options}
        target: Any = cascades_of(config, args.app, **defaults)
    else:
        target = import_target(args.app)
    if args.keys:
        keys_config = read_toml(args.keys)
        options["keys"] = read_keys(keys_config.get("keys", []), f"{args.keys}: keys")
    if args.on_exhausted:
        options["on_exhausted"] = args.on_exhausted
    if args.redis:
        options["redis"] = args.redis
    redis = options.pop("redis", None)
    if redis:
        from ._state import RedisState

        options["state"] = RedisState(redis)
    if isinstance(target, Gateway):
        gateway = target
        if options.get("keys"):
            raise ConfigError("--keys: APP is a Gateway with its own keys; give the keys to Gateway(keys=...)")
    else:
        gateway = Gateway(target, **options)
    if gateway.keys is None or not len(gateway.keys):
        if not args.no_auth:
            raise ConfigError(
                "keys: the gateway needs keys (--keys FILE, made with --new-key), or --no-auth on loopback"
            )
        if not _loopback(args.host):
            raise ConfigError(f"--no-auth: only allowed on a loopback address, got --host {args.host}")
        gateway.keys = None
    return create_app(gateway)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _new_key(name: str, daily_usd: float | None) -> int:
    from ._keys import ApiKey, hash_key, new_key

    key = new_key()
    entry = ApiKey(name, hash_key(key), daily_usd)  # validates the name and the cap
    print(f"key (give it to the caller; it is not stored anywhere): {key}", file=sys.stderr)
    print("[[keys]]")
    print(f'name = "{entry.name}"')
    print(f'sha256 = "{entry.sha256}"')
    if daily_usd is not None:
        print(f"daily_usd = {daily_usd}")
    return 0
