"""What the HTTP providers share: a pooled httpx client per event loop, a secret API key, bounded
response reading, and the mapping of HTTP failures onto the error taxonomy."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import ssl
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    import httpx

from .._errors import CallerError, ConfigError, ProviderError

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
POOL_SHARD_CONNECTIONS = 8
"""Connections per httpx client. httpcore's pool rescans every connection it holds on each request and
response, so one client of 512 connections spends CPU quadratic in the concurrency (measured in
benchmarks/overhead.py: at concurrency 256, shards of 8 used about half the CPU per request of one
512-connection client, and less than shards of 16, 32 or 64); the clients share one TLS context."""
DEFAULT_TOTAL_TIMEOUT_S = 300.0
"""A deadline on a whole call: ``timeout_s`` bounds each read, so a server trickling bytes never trips it."""


MAX_REPORTED_TOKENS = 10**12
"""Token counts above this in a response's usage are not believed (treated as missing: the engine then
charges its own bound); they would overflow the cost arithmetic."""


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpProvider:
    """Base of the HTTP providers. One provider object works across event loops (``run_sync`` and
    ``asyncio.run`` in one process): httpx clients are bound to a loop, so each loop gets its own."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        verify_tls: bool = True,
        max_connections: int = 512,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        total_timeout_s: float | None = DEFAULT_TOTAL_TIMEOUT_S,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ConfigError(f"timeout_s/connect_timeout_s: must be > 0, got {timeout_s!r}/{connect_timeout_s!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._api_key: SecretStr | None = None
        if api_key_env is not None:
            value = os.environ.get(api_key_env)
            if not value:
                raise ConfigError(f"api_key_env: environment variable {api_key_env!r} is not set or empty")
            self._api_key = SecretStr(value)
        import httpx  # imported on first use: it is most of `import cascade`'s time

        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.headers = dict(headers or {})
        self.verify_tls = verify_tls
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections: expected an integer >= 1, got {max_connections!r}")
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        if total_timeout_s is not None and not total_timeout_s > 0:
            raise ConfigError(f"total_timeout_s: must be > 0 or None, got {total_timeout_s!r}")
        self.total_timeout_s = total_timeout_s
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _secret(self) -> str | None:
        return self._api_key.get_secret_value() if self._api_key is not None else None

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None or pool.closed:
            pool = _Pool(self.max_connections, self.timeout, self.verify_tls)
            self._pools[loop] = pool
        return pool

    async def aclose(self) -> None:
        """Close this loop's clients; clients of loops that are gone are dropped with them."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.aclose()

    async def _post_json(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """POST and return the JSON body of a 2xx answer; raise a classified ProviderError otherwise. The
        API key is scrubbed from every error message (a server may echo it back)."""
        try:
            return await self._post(url, body, headers)
        except ProviderError as exc:
            key = self._secret()
            if key and key in exc.message:
                exc.message = exc.message.replace(key, "[redacted]")
                exc.args = (exc.message,)
            raise

    async def _post(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        import httpx

        deadline = None if self.total_timeout_s is None else time.monotonic() + self.total_timeout_s
        pool = self._pool()
        client = pool.acquire()
        try:
            async with client.stream("POST", url, json=body, headers=headers) as resp:
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise ProviderError(
                        "rung_fatal",
                        "response_too_large",
                        f"{self.name}: response of {declared} bytes exceeds "
                        f"max_response_bytes={self.max_response_bytes}",
                        status=resp.status_code,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    if deadline is not None and time.monotonic() > deadline:
                        raise ProviderError(
                            "transient",
                            "timeout",
                            f"{self.name}: no complete answer within total_timeout_s={self.total_timeout_s} "
                            f"calling {url}",
                        )
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise ProviderError(
                            "rung_fatal",
                            "response_too_large",
                            f"{self.name}: response exceeds max_response_bytes={self.max_response_bytes}",
                            status=resp.status_code,
                        )
                    chunks.append(chunk)
                raw = b"".join(chunks)
                status = resp.status_code
                resp_headers = resp.headers
        except ProviderError:
            raise
        except httpx.TimeoutException as exc:
            raise ProviderError("transient", "timeout", f"{self.name}: {type(exc).__name__} calling {url}") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise ProviderError(
                "transient", "connection_error", f"{self.name}: {type(exc).__name__} calling {url}: {exc}"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError("transient", "connection_error", f"{self.name}: {type(exc).__name__}: {exc}") from None
        finally:
            pool.release(client)

        if status >= 300:
            raise self._classify(status, raw, resp_headers)
        return decode_json_object(raw, status, self.name)

    def _classify(self, status: int, raw: bytes, headers: httpx.Headers) -> ProviderError:
        """Map a non-2xx answer onto transient / rung_fatal / caller with a reason code."""
        message, code = _error_text(raw)
        text = f"{self.name}: HTTP {status}: {message}"[:500]
        lowered = f"{code} {message}".lower()
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status == 429:
            return ProviderError("transient", "rate_limited", text, status=status, retry_after=retry_after)
        if status in (408, 409) or status >= 500:
            return ProviderError("transient", "server_error", text, status=status, retry_after=retry_after)
        if status in (401, 403):
            return ProviderError("rung_fatal", "auth_failed", text, status=status)
        if status == 404:
            return ProviderError("rung_fatal", "model_not_found", text, status=status)
        if (
            "context_length" in lowered
            or "context length" in lowered
            or "too long" in lowered
            or ("maximum context" in lowered)
        ):
            return ProviderError("rung_fatal", "context_length_exceeded", text, status=status)
        if "content_policy" in lowered or "content_filter" in lowered or "safety" in lowered:
            return ProviderError("rung_fatal", "content_policy", text, status=status)
        if status in (400, 422):
            return CallerError("bad_request", text, status=status)
        return ProviderError("rung_fatal", f"http_{status}", text, status=status)


class _Pool:
    """One event loop's httpx clients: ``max_connections`` split over clients of at most
    ``POOL_SHARD_CONNECTIONS`` each, made on first use. A request goes to the first client with a free
    connection (so a light load keeps to one client), else to the least busy one."""

    __slots__ = ("busy", "clients", "closed", "limits", "per", "ssl", "timeout", "verify")

    def __init__(self, max_connections: int, timeout: httpx.Timeout, verify: bool) -> None:
        import httpx

        n = -(-max_connections // POOL_SHARD_CONNECTIONS)
        self.per = -(-max_connections // n)
        self.limits = httpx.Limits(max_connections=self.per, max_keepalive_connections=self.per)
        self.timeout = timeout
        self.verify = verify
        self.ssl: ssl.SSLContext | None = None
        self.clients: list[httpx.AsyncClient | None] = [None] * n
        self.busy = [0] * n
        self.closed = False

    def acquire(self) -> httpx.AsyncClient:
        import httpx

        """The client for the next request, counted busy until :meth:`release`."""
        busy = self.busy
        per = self.per
        shard = next((i for i, b in enumerate(busy) if b < per), None)
        if shard is None:
            shard = busy.index(min(busy))
        busy[shard] += 1
        client = self.clients[shard]
        if client is None:
            if self.ssl is None:  # httpx builds one per client otherwise (CA bundle loaded each time)
                self.ssl = httpx.create_ssl_context(verify=self.verify, trust_env=True)
            client = httpx.AsyncClient(timeout=self.timeout, limits=self.limits, verify=self.ssl)
            self.clients[shard] = client
        return client

    def release(self, client: httpx.AsyncClient) -> None:
        self.busy[self.clients.index(client)] -= 1

    async def aclose(self) -> None:
        self.closed = True
        for client in self.clients:
            if client is not None:
                await client.aclose()


def decode_json_object(raw: bytes, status: int = 200, source: str = "http") -> dict[str, Any]:
    """The JSON object of a 2xx body; anything else (not JSON, not an object, nested past the parser's
    recursion limit) is a ``bad_response``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProviderError(
            "rung_fatal",
            "bad_response",
            f"{source}: HTTP {status} with a body that is not JSON: {raw[:120]!r}",
            status=status,
        ) from None
    if not isinstance(data, dict):
        raise ProviderError("rung_fatal", "bad_response", f"{source}: JSON body is not an object", status=status)
    return data


def _error_text(raw: bytes) -> tuple[str, str]:
    """The message and code of an OpenAI- or Anthropic-style error body (or the start of any body)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw[:200].decode("utf-8", "replace").strip() or "(empty body)", ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", "")), str(err.get("code") or err.get("type") or "")
    if isinstance(err, str):
        return err, ""
    return json.dumps(data)[:200], ""


def read_usage(usage: Any, in_key: str, out_key: str) -> tuple[int, int]:
    """Token counts from a usage object; (-1, -1) when absent or malformed (not ints, negative, or above
    :data:`MAX_REPORTED_TOKENS`): the engine then bounds them."""
    if isinstance(usage, Mapping):
        tokens_in, tokens_out = usage.get(in_key), usage.get(out_key)
        if all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_REPORTED_TOKENS
            for v in (tokens_in, tokens_out)
        ):
            return tokens_in, tokens_out  # type: ignore[return-value]
    return -1, -1
