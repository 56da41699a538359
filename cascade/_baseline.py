"""What a request would have cost on the top rung alone: the baseline that savings are measured against.

The rule (the same as ``cascade stats``): one call's prompt tokens (the first attempt's, divided by its
calls) and one call's output tokens (the last attempt with an answer), priced at the ``top_rung`` prices
of the request event. A request whose attempts were not seen falls back to its token totals divided by
its number of attempts. Tokenizers and answer lengths differ between models: an estimate, not an invoice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ._fields import number

Event = dict[str, Any]


def _num(e: Event, key: str) -> float:
    return number(e.get(key)) or 0.0


class TopRungBaseline:
    """Feed it a stream's events; ``request`` returns the estimate for each request event (None without
    ``top_rung`` prices). Unfinished requests are held in a bounded map: past ``max_pending`` the oldest is
    dropped (counted in ``dropped``) and its request falls back to the totals."""

    def __init__(self, max_pending: int = 100_000) -> None:
        self.max_pending = max_pending
        self._pending: OrderedDict[str, list[float]] = OrderedDict()
        self.dropped = 0

    def attempt(self, e: Event) -> None:
        rid = e.get("request_id")
        if not isinstance(rid, str):
            return
        calls = max(1.0, _num(e, "calls"))
        entry = self._pending.get(rid)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            entry = self._pending[rid] = [-1.0, -1.0]
        if entry[0] < 0 and _num(e, "tokens_in") > 0:
            entry[0] = _num(e, "tokens_in") / calls
        if _num(e, "tokens_out") > 0:
            entry[1] = _num(e, "tokens_out") / calls

    def request(self, e: Event) -> float | None:
        rid = e.get("request_id")
        entry = self._pending.pop(rid, None) if isinstance(rid, str) else None
        top = e.get("top_rung")
        if not isinstance(top, dict):
            return None
        per = max(1.0, _num(e, "attempts"))
        tokens_in = entry[0] if entry and entry[0] >= 0 else _num(e, "tokens_in") / per
        tokens_out = entry[1] if entry and entry[1] >= 0 else _num(e, "tokens_out") / per
        return (tokens_in * _num(top, "price_in") + tokens_out * _num(top, "price_out")) / 1_000_000

    @property
    def pending(self) -> int:
        return len(self._pending)
