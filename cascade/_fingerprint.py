"""A fingerprint of a ladder and its checks, written on every ``request`` event.

Resuming a batch reuses the answers an earlier run accepted; that is only right if the earlier run asked
the same models with the same checks. The fingerprint is a short hash of what decides an answer: each
rung's name, model, prices, params, provider (type and URL) and its checks (their types, settings and,
for a check written as a function, the function's code). ``resume_from`` compares it.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from typing import Any

from ._ladder import Ladder
from ._types import Validator

_MAX_DEPTH = 6


def ladder_fingerprint(ladder: Ladder, checks: Mapping[str, Validator | None]) -> str:
    """16 hex characters that change when a rung or a check that decides answers changes."""
    described = [
        {
            "name": r.name,
            "model": r.model,
            "price_in": r.price_in,
            "price_out": r.price_out,
            "params": r.params.to_wire(),
            "reasks": r.reasks,
            "provider": _describe(r.provider, 1, provider=True),
            "checks": _describe(checks.get(r.name), 0),
        }
        for r in ladder.rungs
    ]
    canon = json.dumps(described, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _code_hash(code: types.CodeType) -> str:
    """The same for the same source in any process (nested code objects by their own hash, not repr)."""
    h = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        part = _code_hash(const) if isinstance(const, types.CodeType) else repr(const)
        h.update(part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def _describe(obj: Any, depth: int, provider: bool = False) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if depth > _MAX_DEPTH:
        return type(obj).__qualname__
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        fn = getattr(obj, "__func__", obj)
        return {"function": fn.__qualname__, "code": _code_hash(fn.__code__)}
    if isinstance(obj, Mapping):
        return {str(k): _describe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        return [_describe(v, depth + 1) for v in obj]
    if hasattr(obj, "pattern") and isinstance(getattr(obj, "pattern", None), str) and hasattr(obj, "search"):
        return {"regex": obj.pattern}
    if provider:  # a provider: what it is and where it points, never its secrets or pools
        return {"type": type(obj).__qualname__, "base_url": getattr(obj, "base_url", None)}
    fields = getattr(obj, "__dict__", None)
    out: dict[str, Any] = {"type": type(obj).__qualname__}
    if isinstance(fields, dict):
        for key, value in sorted(fields.items()):
            if not key.startswith("_"):
                out[key] = _describe(value, depth + 1)
    return out
