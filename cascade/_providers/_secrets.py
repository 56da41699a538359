"""API keys and secret headers: validated once, added to requests at send time, scrubbed from every message.

The raw value lives only inside a :class:`Secret` (whose ``repr`` is redacted) and is written into the
request headers by :class:`SecretAuth` while httpx sends, so no frame of this library holds it in a local
variable: an error reporter that captures frame locals (Sentry does by default) never sees it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    import httpx

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
"""Header names whose values are secret by default (compared case-insensitively)."""
_SCHEMES = frozenset({"bearer", "basic", "token", "apikey"})


def check_secret(value: str, where: str) -> str:
    """``value`` without surrounding whitespace (a secret mounted from a file ends in a newline); a
    ConfigError naming ``where`` (never the value) if what is left is empty or holds whitespace, control
    or non-ASCII characters, which no HTTP header may carry."""
    stripped = value.strip()
    if not stripped:
        raise ConfigError(f"{where}: is empty")
    for i, ch in enumerate(stripped):
        if not "!" <= ch <= "~":
            kind = "whitespace" if ch.isspace() else "a control character" if ord(ch) < 0x80 else "a non-ASCII one"
            raise ConfigError(f"{where}: holds {kind} at position {i}; a key must be printable ASCII (value not shown)")
    return stripped


class Secret:
    """One secret string. ``repr``/``str`` never show it; :meth:`reveal` is the one way to read it."""

    __slots__ = ("_forms", "_prefix", "_value")

    def __init__(self, value: str, prefix: str = "") -> None:
        self._value = value
        self._prefix = prefix  # not secret: "Bearer " in front of a key
        # The forms a server or library may echo it in: plain, repr/JSON-escaped, URL-encoded.
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], urllib.parse.quote(value, safe="")}
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def reveal(self) -> str:
        """The header value to send: the prefix and the secret."""
        return self._prefix + self._value

    def scrub(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


class Secrets:
    """The secrets one provider sends, by header name; scrubs all of them from any text."""

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, Secret] | None = None) -> None:
        self.headers: dict[str, Secret] = dict(headers or {})

    def scrub(self, text: str) -> str:
        for secret in self.headers.values():
            text = secret.scrub(text)
        return text

    def __repr__(self) -> str:
        return f"Secrets(headers={sorted(self.headers)!r})"


def split_headers(
    headers: Mapping[str, str] | None, secret: Iterable[str] = ()
) -> tuple[dict[str, str], dict[str, Secret]]:
    """Plain headers and secret ones (``Authorization``/``api-key``/``x-api-key`` and those named in
    ``secret``), the secret values checked like keys."""
    names = SECRET_HEADERS | {s.lower() for s in secret}
    plain: dict[str, str] = {}
    hidden: dict[str, Secret] = {}
    for name, value in (headers or {}).items():
        if name.lower() in names:
            scheme, _, rest = str(value).strip().partition(" ")
            if rest and scheme.lower() in _SCHEMES:
                hidden[name] = Secret(check_secret(rest, f"headers[{name!r}]"), scheme + " ")
            else:
                hidden[name] = Secret(check_secret(str(value), f"headers[{name!r}]"))
        else:
            plain[name] = value
    return plain, hidden


def make_auth(secrets: Secrets) -> Any:
    """An ``httpx.Auth`` that sets the secret headers on each request as it is sent."""
    import httpx

    class SecretAuth(httpx.Auth):
        def __init__(self, secrets: Secrets) -> None:
            self.secrets = secrets

        def auth_flow(self, request: httpx.Request) -> Any:
            for name, secret in self.secrets.headers.items():
                request.headers[name] = secret.reveal()
            yield request

        def __repr__(self) -> str:
            return f"SecretAuth({self.secrets!r})"

    return SecretAuth(secrets)
