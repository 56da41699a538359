"""What the HTTP providers share: a pooled httpx client per event loop, a secret API key, bounded
response reading, and the mapping of HTTP failures onto the error taxonomy."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import ssl
import sys
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

from .._errors import CallerError, ConfigError, ProviderError
from ._secrets import Secret, Secrets, check_secret, make_auth, split_headers

T = TypeVar("T")

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
POOL_SHARD_CONNECTIONS = 8
"""Connections per httpx client. httpcore's pool rescans every connection it holds on each request and
response, so one client of 512 connections spends CPU quadratic in the concurrency (measured in
benchmarks/overhead.py: at concurrency 256, shards of 8 used about half the CPU per request of one
512-connection client, and less than shards of 16, 32 or 64); the clients share one TLS context."""
DEFAULT_TOTAL_TIMEOUT_S = 300.0
"""A deadline on a whole call, from connecting to the last body byte: ``timeout_s`` bounds each read, so a
server trickling bytes (or sending endless ``100 Continue`` replies) never trips it."""


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
    ``asyncio.run`` in one process): httpx clients are bound to a loop, so each loop gets its own, held
    by the loop itself (a pool never keeps its loop alive: a loop that is dropped takes its connections).

    The API key (``api_key_env``) and every secret header (``Authorization``, ``api-key``, ``x-api-key``
    and the names in ``secret_headers``) are checked once, added at send time by an ``httpx.Auth`` and
    scrubbed, in their escaped forms too, from every error message before it is cut to length."""

    name = "http"
    key_header = "Authorization"
    key_prefix = "Bearer "

    def __init__(
        self,
        base_url: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        secret_headers: Iterable[str] = (),
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
        plain, hidden = split_headers(headers, secret_headers)
        if api_key_env is not None:
            value = os.environ.get(api_key_env)
            if not value:
                raise ConfigError(f"api_key_env: environment variable {api_key_env!r} is not set or empty")
            key = check_secret(value, f"api_key_env: environment variable {api_key_env!r}")
            hidden[self.key_header] = Secret(key, self.key_prefix)
        self._secrets = Secrets(hidden)
        import httpx  # imported on first use: it is most of `import cascade`'s time

        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.headers = plain
        self.verify_tls = verify_tls
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections: expected an integer >= 1, got {max_connections!r}")
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        if total_timeout_s is not None and not total_timeout_s > 0:
            raise ConfigError(f"total_timeout_s: must be > 0 or None, got {total_timeout_s!r}")
        self.total_timeout_s = total_timeout_s
        self._auth = make_auth(self._secrets) if self._secrets.headers else None
        self._token = object()  # this provider's key among the pools a loop holds
        self._fallback: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _scrub(self, text: str) -> str:
        """``text`` with every secret this provider sends replaced by ``[redacted]``."""
        return self._secrets.scrub(text)

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pools = _loop_pools(loop)
        table: Any = self._fallback if pools is None else pools
        pool: _Pool | None = table.get(loop if pools is None else self._token)
        if pool is None or pool.closed:
            pool = _Pool(self.max_connections, self.timeout, self.verify_tls)
            table[loop if pools is None else self._token] = pool
        return pool

    async def aclose(self) -> None:
        """Close this loop's clients; clients of loops that are gone went with them."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pools = _loop_pools(loop)
        pool = self._fallback.pop(loop, None) if pools is None else pools.pop(self._token, None)
        if pool is not None:
            await pool.aclose()

    async def _post_json(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """POST and return the JSON body of a 2xx answer; raise a classified ProviderError otherwise. The
        secrets are scrubbed from every error message (a server may echo them back)."""
        try:
            return await self._post(url, body, headers)
        except ProviderError as exc:
            exc.message = self._scrub(exc.message)
            exc.args = (exc.message,)
            raise

    async def _post(self, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """The whole exchange (connect, send, 1xx replies, headers, body) runs inside ``total_timeout_s``."""
        pool = self._pool()
        client = pool.acquire()
        sent = _Sent()
        try:
            if self.total_timeout_s is None:
                status, raw, resp_headers = await self._exchange(client, url, body, headers, sent)
            else:
                status, raw, resp_headers = await within(
                    self.total_timeout_s, self._exchange(client, url, body, headers, sent)
                )
        except (asyncio.TimeoutError, TimeoutError):
            raise ProviderError(
                "transient",
                "timeout",
                f"{self.name}: no complete answer within total_timeout_s={self.total_timeout_s} calling {url}",
                maybe_billed=sent.sent,
            ) from None
        finally:
            pool.release(client)
        if status >= 300:
            raise self._classify(status, raw, resp_headers)
        return decode_json_object(raw, status, self.name, self._scrub)

    async def _exchange(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: Mapping[str, str], sent: _Sent
    ) -> tuple[int, bytes, httpx.Headers]:
        import httpx

        try:
            async with client.stream(
                "POST",
                url,
                json=body,
                headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                extensions={"trace": sent.trace},
            ) as resp:
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise self._too_large(f"response of {declared} bytes", resp.status_code)
                decoder = BoundedDecoder(resp.headers.get("content-encoding"), self.max_response_bytes)
                chunks: list[bytes] = []
                raw_size = 0
                async for chunk in resp.aiter_raw():
                    raw_size += len(chunk)
                    if raw_size > self.max_response_bytes:
                        raise self._too_large("response", resp.status_code)
                    chunks.append(decoder.decode(chunk))
                chunks.append(decoder.flush())
                return resp.status_code, b"".join(chunks), resp.headers
        except _TooLarge as exc:
            raise self._too_large(f"decoded response ({exc})", None) from None
        except _BadEncoding as exc:
            raise ProviderError("rung_fatal", "bad_response", f"{self.name}: {exc}", maybe_billed=True) from None
        except httpx.TimeoutException as exc:
            raise ProviderError(
                "transient", "timeout", f"{self.name}: {type(exc).__name__} calling {url}", maybe_billed=sent.sent
            ) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise ProviderError(
                "transient",
                "connection_error",
                self._scrub(f"{self.name}: {type(exc).__name__} calling {url}: {exc}"),
                maybe_billed=sent.sent,
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                "transient",
                "connection_error",
                self._scrub(f"{self.name}: {type(exc).__name__}: {exc}"),
                maybe_billed=sent.sent,
            ) from None

    def _too_large(self, what: str, status: int | None) -> ProviderError:
        return ProviderError(
            "rung_fatal",
            "response_too_large",
            f"{self.name}: {what} exceeds max_response_bytes={self.max_response_bytes}",
            status=status,
            maybe_billed=True,
        )

    def _classify(self, status: int, raw: bytes, headers: httpx.Headers) -> ProviderError:
        """Map a non-2xx answer onto transient / rung_fatal / caller with a reason code. The message is
        scrubbed of secrets before it is cut to length."""
        message, code = _error_text(raw)
        text = self._scrub(f"{self.name}: HTTP {status}: {message}")[:500]
        lowered = f"{code} {message}".lower()
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status == 429:
            return ProviderError("transient", "rate_limited", text, status=status, retry_after=retry_after)
        if status in (408, 409) or status >= 500:
            return ProviderError(
                "transient", "server_error", text, status=status, retry_after=retry_after, maybe_billed=status == 408
            )
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


ACCEPT_ENCODING = "gzip, deflate"
"""What we accept: the encodings :class:`BoundedDecoder` decodes under a size bound (no brotli/zstd)."""


class _Sent:
    """Whether the request's headers went out: after that a failed call may have been billed."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False

    async def trace(self, event: str, _info: Any) -> None:
        if event.endswith("send_request_headers.started"):
            self.sent = True


async def within(seconds: float, coro: Awaitable[T]) -> T:
    """``await coro`` with a deadline over all of it (``asyncio.timeout`` where there is one)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


class _TooLarge(Exception):
    pass


class _BadEncoding(Exception):
    pass


class BoundedDecoder:
    """Decodes a gzip/deflate body chunk by chunk, never inflating more than ``limit`` bytes in total:
    a small compressed body that expands to gigabytes (a gzip bomb) stops at the bound, not in memory."""

    __slots__ = ("_z", "limit", "size")

    def __init__(self, encoding: str | None, limit: int) -> None:
        self.limit = limit
        self.size = 0
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if not codings:
            self._z: Any = None
        elif codings in (["gzip"], ["x-gzip"]):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif codings == ["deflate"]:
            self._z = _Deflate()
        else:
            raise _BadEncoding(f"content-encoding {encoding!r} is not one this client asked for ({ACCEPT_ENCODING})")

    def _count(self, out: bytes) -> bytes:
        self.size += len(out)
        if self.size > self.limit:
            raise _TooLarge(f"more than {self.limit} bytes")
        return out

    def decode(self, chunk: bytes) -> bytes:
        if self._z is None:
            return self._count(chunk)
        parts: list[bytes] = []
        data = chunk
        try:
            while data:
                parts.append(self._count(self._z.decompress(data, self.limit - self.size + 1)))
                data = self._z.unconsumed_tail
        except zlib.error as exc:
            raise _BadEncoding(f"body is not valid {type(self._z).__name__} data: {exc}") from None
        return b"".join(parts)

    def flush(self) -> bytes:
        return b"" if self._z is None else self._count(self._z.flush())


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (wrongly, but commonly) raw."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return bytes(self._z.unconsumed_tail)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._z.decompress(data, max_length)
            except zlib.error:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._z.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._z.flush()


_LOOP_ATTR = "_cascade_http_pools"


def _loop_pools(loop: asyncio.AbstractEventLoop) -> dict[object, _Pool] | None:
    """The pools a loop holds (made on first use), or None for a loop that takes no attributes (uvloop):
    the provider then holds them itself."""
    pools: dict[object, _Pool] | None = getattr(loop, _LOOP_ATTR, None)
    if pools is None:
        pools = {}
        try:
            setattr(loop, _LOOP_ATTR, pools)
        except AttributeError:
            return None
    return pools


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


def decode_json_object(
    raw: bytes, status: int = 200, source: str = "http", scrub: Callable[[str], str] = str
) -> dict[str, Any]:
    """The JSON object of a 2xx body; anything else (not JSON, not an object, nested past the parser's
    recursion limit) is a ``bad_response``. ``scrub`` removes secrets from the quoted body before it is
    cut (a cut first could leave most of a key in view)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        shown = scrub(raw.decode("utf-8", "replace"))[:120]
        raise ProviderError(
            "rung_fatal",
            "bad_response",
            f"{source}: HTTP {status} with a body that is not JSON: {shown!r}",
            status=status,
            maybe_billed=True,
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(
            "rung_fatal", "bad_response", f"{source}: JSON body is not an object", status=status, maybe_billed=True
        )
    if any(raw.count(key) > 1 for key in _USAGE_KEYS) and _usage_ambiguous(raw):
        data["usage"] = None  # which of two counts is true? neither: the engine charges its bound
    return data


_USAGE_KEYS = (b'"usage"', b'"prompt_tokens"', b'"completion_tokens"', b'"input_tokens"', b'"output_tokens"')


def _usage_ambiguous(raw: bytes) -> bool:
    """True when an object in the body repeats ``usage`` or a token-count key (JSON keeps the last one
    silently; a hostile server may put a small count last)."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys) and any(f'"{k}"'.encode() in _USAGE_KEYS for k in keys if keys.count(k) > 1):
            repeated = True
        return dict(items)

    json.loads(raw, object_pairs_hook=pairs)
    return repeated


def _error_text(raw: bytes) -> tuple[str, str]:
    """The message and code of an OpenAI- or Anthropic-style error body (or any body), whole: the caller
    scrubs secrets, then cuts."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw.decode("utf-8", "replace").strip() or "(empty body)", ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", "")), str(err.get("code") or err.get("type") or "")
    if isinstance(err, str):
        return err, ""
    return json.dumps(data), ""


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
