"""The ``cascade`` command. Each subcommand lives in its own module with a ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# One line per subcommand module; each defines register(subparsers) and sets a ``func`` default.
COMMAND_MODULES: tuple[str, ...] = (
    "cascade.stats._cli",
    "cascade.replay._cli",
    "cascade.replay._record",
    "cascade.demo._cli",
    "cascade._logs._cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade", description="cascade-router: cheapest-first LLM cascades")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]  # type: ignore[no-any-return]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the subcommand's usage, not the top-level one: that is the command the user typed
        _subcommand(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `cascade eval ... | head`: the reader left early, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail
        return 0
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
