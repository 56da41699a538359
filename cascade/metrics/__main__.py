"""``python -m cascade.metrics alerts|dashboard``: print a shipped file, to save it where Prometheus or
Grafana reads it (``python -m cascade.metrics alerts > /etc/prometheus/cascade-alerts.yml``)."""

from __future__ import annotations

import sys

from .._errors import ConfigError
from ._assets import ASSETS, asset_text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m cascade.metrics {{{','.join(sorted(ASSETS))}}}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(asset_text(args[0]))
    except ConfigError as exc:
        print(f"cascade.metrics: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
