"""What of prompts and outputs reaches the log: nothing, a keyed hash, or the full text."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Literal

from ._errors import ConfigError
from ._events import Event

LogContent = Literal["none", "hash", "full"]


class ContentPolicy:
    """Decides what of prompts and outputs reaches the log: nothing, a keyed hash, or the full text.

    The hash is HMAC-SHA256 with the caller's secret, so logged hashes cannot be reversed by guessing
    likely contents without the key.
    """

    def __init__(self, mode: LogContent = "none", hash_key: str | bytes | None = None) -> None:
        if mode not in ("none", "hash", "full"):
            raise ConfigError(f"log_content: expected 'none', 'hash' or 'full', got {mode!r}")
        if mode == "hash":
            key = hash_key if hash_key is not None else os.environ.get("CASCADE_LOG_HASH_KEY")
            if not key:
                raise ConfigError(
                    "log_hash_key: log_content='hash' needs a secret key (argument or CASCADE_LOG_HASH_KEY)"
                )
            self._key = key.encode() if isinstance(key, str) else key
        self.mode = mode

    def add(self, event: Event, field: str, content: Any) -> None:
        if self.mode == "none" or content is None:
            return
        if self.mode == "full":
            event[field] = content
            return
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True, default=str)
        # surrogatepass: a lone surrogate (valid JSON "\ud800", not UTF-8) still hashes, never raises
        event[f"{field}_hash"] = hmac.new(self._key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"ContentPolicy(mode={self.mode!r})"  # never the key
