"""Who may call the gateway: bearer keys, stored only as SHA-256 hashes and compared in constant time.

Keys are random 256-bit tokens (``new_key``), so a fast hash is enough: there is nothing to brute-force.
Only the hash and the key's name ever reach configuration or logs.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import ConfigError

_HEX64 = re.compile(r"[0-9a-f]{64}")
PREFIX = "csk-"


def new_key() -> str:
    """A fresh gateway key: ``csk-`` and 43 URL-safe characters (256 random bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One caller: its ``name`` (in logs and metrics), the ``sha256`` of its key, and an optional cap on
    what its requests may spend per UTC day (``daily_usd``)."""

    name: str
    sha256: str
    daily_usd: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"keys: a key needs a non-empty name, got {self.name!r}")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise ConfigError(
                f"keys.{self.name}.sha256: expected 64 lower-case hex digits (cascade serve --new-key), "
                f"got {str(self.sha256)[:12]!r}..."
            )
        cap = self.daily_usd
        if cap is not None and (
            isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap) or cap < 0
        ):
            raise ConfigError(f"keys.{self.name}.daily_usd: expected a finite number >= 0 (USD), got {cap!r}")

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, daily_usd={self.daily_usd!r})"


class KeyRing:
    """The accepted keys. ``find`` hashes the presented key once and compares it with every stored hash
    (no early exit), so the time taken says nothing about which key, if any, matched."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = tuple(keys)
        names = [k.name for k in self.keys]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"keys: duplicate key name {duplicate!r}; names identify callers in the log")

    def find(self, authorization: str | None) -> ApiKey | None:
        """The key an ``Authorization: Bearer ...`` header presents, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_key(token.strip())
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"KeyRing({[k.name for k in self.keys]!r})"
