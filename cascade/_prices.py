"""Prices of hosted models from the ``genai-prices`` package, for rungs that give none.

Explicit ``price_in``/``price_out`` always win. Without them a rung looks its model up in the price
table that ``genai-prices`` ships (never fetched at run time: its data is a snapshot inside the
package), and records where the figures came from in ``Rung.price_source``, which every attempt event
of the rung carries. Install with ``pip install 'cascade-router[prices]'``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ._errors import ConfigError

PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class LookedUp:
    """USD per million tokens in and out, and a line saying where and when they were found."""

    price_in: float
    price_out: float
    source: str


def lookup(model: str, provider: str | None = None) -> LookedUp:
    """The prices of ``model`` (at ``provider``, a genai-prices provider id such as ``openai``, when
    given) as of today; a one-line :class:`ConfigError` when the package or the model is missing."""
    try:
        import genai_prices
    except ImportError:
        raise ConfigError(
            f"Rung.price_in/price_out: not given for model {model!r}, and genai-prices (the price lookup) is not "
            "installed: pip install 'cascade-router[prices]', or give the prices (USD per million tokens)"
        ) from None
    today = _dt.datetime.now(tz=_dt.timezone.utc)
    usage = genai_prices.Usage(input_tokens=PER_MILLION, output_tokens=PER_MILLION)
    try:
        found = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=today)
    except LookupError as exc:
        where = f" at provider {provider!r}" if provider else ""
        raise ConfigError(
            f"Rung.price_in/price_out: not given, and genai-prices has no price for model {model!r}{where} "
            f"({exc}); give the prices (USD per million tokens)"
        ) from None
    source = (
        f"genai-prices {genai_prices.__version__}: {found.provider.id}/{found.model.id}, "
        f"looked up {today.date().isoformat()}"
    )
    return LookedUp(float(found.input_price), float(found.output_price), source)
