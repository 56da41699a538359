"""What the demo's tests script the test server with: a ticket label answered at a given confidence."""

from __future__ import annotations

import json
import math

from cascade.testing import Reply


def label_reply(label: str, p: float) -> Reply:
    """``{"label": label}`` whose label token has probability ``p`` (the rest of the mass on another label)."""
    other = "billing" if label != "billing" else "technical"
    tokens = [('{"label": "', 0.0, {}), (label, math.log(p), {other: math.log(1 - p)}), ('"}', 0.0, {})]
    return Reply(content=json.dumps({"label": label}), logprobs=tokens, tokens_in=100, tokens_out=6)
