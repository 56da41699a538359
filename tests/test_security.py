"""Nothing leaked: API keys never reach logs, reprs, errors or results; content is off the log by default
and hashed with a key when asked; log files are owner-only; TLS is verified unless turned off; logs are
read as data only."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import hmac
import json
import logging
import os
import shutil
import ssl
import subprocess
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from checks import unchecked_on_purpose

import cascade as cascade_pkg
from cascade import (
    Anthropic,
    Cascade,
    CascadeError,
    CircuitBreaker,
    ConfigError,
    MemorySink,
    OpenAICompatible,
    RetryPolicy,
    Rung,
    StructlogSink,
)
from cascade._content import ContentPolicy
from cascade._sinks import JsonlSink
from cascade.testing import Reply, TestServer

KEY = "sk-FAKE-cascade-secret-7f3a9c2e51d04b"
MSG = [{"role": "user", "content": "What is the refund policy for order 1234?"}]
FAST = RetryPolicy(attempts=2, initial_wait_s=0, max_wait_s=0.01)


def echo(status: int) -> Reply:
    """An error answer from a careless server that echoes the key it was sent."""
    return Reply(status=status, error={"message": f"Incorrect API key provided: {KEY}", "type": "x", "code": KEY})


@unchecked_on_purpose
def test_a_varied_workload_never_shows_the_key(
    server: TestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", KEY)
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", KEY)
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logging included
    structlog.configure(processors=[structlog.processors.JSONRenderer()], logger_factory=structlog.PrintLoggerFactory())
    try:
        openai = OpenAICompatible(server.base_url, api_key_env="FAKE_OPENAI_KEY")
        claude = Anthropic(server.url, api_key_env="FAKE_ANTHROPIC_KEY")
        dead = OpenAICompatible("http://127.0.0.1:9/v1", api_key_env="FAKE_OPENAI_KEY")
        rungs = [
            Rung(name="dead", provider=dead, model="d", price_in=0.1, price_out=0.1, retry=FAST),
            Rung(name="small", provider=openai, model="small-m", price_in=0.5, price_out=1, retry=FAST),
            Rung(name="claude", provider=claude, model="claude-m", price_in=3, price_out=15, retry=FAST),
        ]
        log = tmp_path / "log.jsonl"
        sinks = [str(log), MemorySink(), StructlogSink()]
        seen: list[str] = []
        server.script("small-m", echo(401), echo(500), Reply(content="fine"), echo(400))
        server.script("claude-m", echo(403))
        with Cascade(rungs, log=sinks, log_content="full", breaker=CircuitBreaker(failures=50)) as c:
            seen += [repr(c), repr(openai), repr(claude), repr(rungs), repr(c.ladder), repr(c.breakers)]
            for _ in range(3):  # exhausted (raises), accepted, caller error (raises)
                try:
                    result = c.run_sync(MSG)
                    seen += [repr(result), json.dumps(result.to_dict(), default=str), str(result.attempts)]
                except CascadeError as exc:
                    seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
                    res = getattr(exc, "result", None)
                    if res is not None:
                        seen.append(json.dumps(res.to_dict(), default=str))
            results = c.map_sync([MSG] * 3, concurrency=3)
            seen += [json.dumps(r.to_dict(), default=str) for r in results]
        out, err = capsys.readouterr()
        seen += [out, err, caplog.text, log.read_text(), json.dumps(sinks[1].events, default=str)]  # type: ignore[attr-defined]
    finally:
        structlog.reset_defaults()
    everything = "\n".join(seen)
    assert "Incorrect API key provided: [redacted]" in everything  # the echo happened and was scrubbed
    assert KEY not in everything
    assert KEY[8:24] not in everything  # nor a recognisable piece of it
    sent = {r.headers.get("authorization") or r.headers.get("x-api-key") for r in server.requests}
    assert sent == {f"Bearer {KEY}", KEY}  # the key was really used on both APIs, just never shown


def test_content_is_not_logged_by_default(server: TestServer, tmp_path: Path) -> None:
    server.default(Reply(content="the secret answer"))
    log = tmp_path / "log.jsonl"
    p = OpenAICompatible(server.base_url)
    with Cascade([Rung(name="a", provider=p, model="m", price_in=1, price_out=1)], log=log) as c:
        c.run_sync(MSG)
    text = log.read_text()
    assert "refund policy" not in text and "the secret answer" not in text
    assert "prompt_hash" not in text and "output_hash" not in text


def test_hash_mode_is_a_keyed_hmac(server: TestServer, tmp_path: Path) -> None:
    server.default(Reply(content="answer"))
    p = OpenAICompatible(server.base_url)
    hashes = []
    for key in ("key-one", "key-two"):
        sink = MemorySink()
        with Cascade(
            [Rung(name="a", provider=p, model="m", price_in=1, price_out=1)],
            log=sink,
            log_content="hash",
            log_hash_key=key,
        ) as c:
            c.run_sync(MSG)
        (request,) = sink.of("request")
        assert "prompt" not in request and "output" not in request
        hashes.append(request["prompt_hash"])
    assert hashes[0] != hashes[1]  # same content, two keys: unlinkable
    canon = json.dumps(MSG, sort_keys=True, default=str).encode()
    # Guessing the prompt does not help without the key: plain digests and wrong keys do not match ...
    assert hashes[0] not in {hashlib.sha256(canon).hexdigest(), hashlib.md5(canon).hexdigest()}
    assert hashes[0] != hmac.new(b"guessed-key", canon, hashlib.sha256).hexdigest()
    assert hashes[0] != hmac.new(b"", canon, hashlib.sha256).hexdigest()
    # ... while the key holder can check a guess.
    assert hashes[0] == hmac.new(b"key-one", canon, hashlib.sha256).hexdigest()
    assert "key-one" not in repr(ContentPolicy("hash", "key-one"))


def test_hash_mode_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASCADE_LOG_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="log_hash_key"):
        ContentPolicy("hash")


def test_log_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        sink = JsonlSink(tmp_path / "sub" / "log.jsonl")
        sink.emit({"event": "x"})
        sink.close()
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "log.jsonl").stat().st_mode & 0o777 == 0o600


# -- TLS ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def self_signed_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate that answers every request with a completion."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    body = json.dumps({"choices": [{"message": {"content": "over tls"}, "finish_reason": "stop"}]}).encode()
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
            )
            await reader.readexactly(length)
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    loop = asyncio.new_event_loop()
    srv = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx))
    port = srv.sockets[0].getsockname()[1]
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield f"https://127.0.0.1:{port}/v1"
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def one_rung(p: Any) -> list[Rung]:
    return [Rung(name="a", provider=p, model="m", price_in=1, price_out=1, retry=RetryPolicy(attempts=1))]


def test_tls_is_verified_by_default(self_signed_https: str) -> None:
    p = OpenAICompatible(self_signed_https)
    assert p.verify_tls is True
    with Cascade(one_rung(p), on_exhausted="best_effort") as c:
        result = c.run_sync(MSG)
    assert not result.accepted and result.attempts[0].reasons == ["connection_error"]
    assert result.attempts[0].error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.attempts[0].error["message"]


def test_tls_verification_can_be_turned_off_explicitly(self_signed_https: str) -> None:
    with Cascade(one_rung(OpenAICompatible(self_signed_https, verify_tls=False))) as c:
        assert c.run_sync(MSG).output == "over tls"


# -- data only ------------------------------------------------------------------------------------------
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}


def test_the_package_never_deserialises_code() -> None:
    """Logs, recordings and replies are parsed with json only: no pickle, marshal, eval or exec anywhere."""
    root = Path(cascade_pkg.__file__).parent
    problems = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in UNSAFE_CALLS:
                names = {node.func.id}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                names = {"yaml.load"} if getattr(node.func.value, "id", "") == "yaml" else set()
            else:
                continue
            bad = (names & UNSAFE_MODULES) | (names & UNSAFE_CALLS) | (names & {"yaml.load"})
            problems += [f"{path.relative_to(root)}:{node.lineno}: {n}" for n in bad]
    assert problems == []
