"""Keys, from the attacker's side: a key never reaches a log, a result, an error message (cut or escaped)
or an error reporter's captured frame locals, whatever the server echoes and wherever the key came from."""

from __future__ import annotations

import asyncio
import json
import traceback
from pathlib import Path
from typing import Any

import pytest
from hostile import RawRequest, hostile, response

from cascade import Anthropic, CallerError, Cascade, CascadeError, ConfigError, OpenAICompatible, RetryPolicy, Rung
from cascade.testing import Reply, TestServer

KEY = "sk-FAKE-\\cascade'secret\"7f3a9c2e51d04b"  # a backslash and quotes: repr and JSON escape it
MSG = [{"role": "user", "content": "hi"}]
ONCE = RetryPolicy(attempts=1)


def pieces(key: str, n: int = 8) -> list[str]:
    """Every n-character piece of the key: none may show anywhere."""
    return [key[i : i + n] for i in range(len(key) - n + 1)]


def leaked(text: str, key: str = KEY) -> list[str]:
    escaped = [repr(key)[1:-1], json.dumps(key)[1:-1]]
    return [p for form in (key, *escaped) for p in pieces(form) if p in text]


def rung(provider: Any) -> list[Rung]:
    return [Rung(name="a", provider=provider, model="m", price_in=1, price_out=1, retry=ONCE)]


def everything(result_or_exc: Any) -> str:
    if isinstance(result_or_exc, BaseException):
        parts = [str(result_or_exc), repr(result_or_exc), "".join(traceback.format_exception(result_or_exc))]
        result_or_exc = getattr(result_or_exc, "result", None)
        if result_or_exc is None:
            return "\n".join(parts)
    else:
        parts = []
    return "\n".join([*parts, json.dumps(result_or_exc.to_dict(), default=str), repr(result_or_exc)])


# -- the key's own characters ------------------------------------------------------------------------------
def test_a_key_ending_in_a_newline_is_stripped_and_used(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A secret mounted from a file ends in a newline: httpx refused the header and its error (holding the
    escaped key) went to the log and the result."""
    monkeypatch.setenv("K_NEWLINE", "sk-mounted-from-a-file-1234567890\n")
    server.default(Reply(content="fine"))
    log = tmp_path / "log.jsonl"
    with Cascade(rung(OpenAICompatible(server.base_url, api_key_env="K_NEWLINE")), log=log) as c:
        result = c.run_sync(MSG)
    assert result.output == "fine"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-mounted-from-a-file-1234567890"
    assert leaked(log.read_text(), "sk-mounted-from-a-file-1234567890") == []


@pytest.mark.parametrize(
    ("value", "kind"),
    [("sk-in ner", "whitespace"), ("sk-tab\there", "whitespace"), ("sk-bell\x07x", "control"),
     ("sk-é-key", "non-ASCII")],
)  # fmt: skip
def test_a_key_with_bad_characters_is_refused_naming_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str, kind: str
) -> None:
    monkeypatch.setenv("K_BAD", value)
    for make in (OpenAICompatible, Anthropic):
        with pytest.raises(ConfigError, match=kind) as info:
            make("http://127.0.0.1:9/v1", api_key_env="K_BAD")
        assert "'K_BAD'" in str(info.value)
        assert value not in str(info.value) and value[3:] not in str(info.value)


def test_a_non_ascii_key_in_a_batch_is_a_config_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review's batch lost 5 of 5 items to a non-ASCII key (UnicodeEncodeError inside httpx)."""
    monkeypatch.setenv("K_UNI", "sk-ключ-0123456789")
    with pytest.raises(ConfigError, match="K_UNI"):
        OpenAICompatible("http://127.0.0.1:9/v1", api_key_env="K_UNI")


# -- echoes straddling every cut ---------------------------------------------------------------------------
def echo_at(offset: int, status: int, as_json: bool) -> Any:
    """A server that echoes the key it was sent, starting ``offset`` characters into the message."""

    async def run(req: RawRequest, writer: asyncio.StreamWriter) -> None:
        sent = req.headers.get("authorization", "").removeprefix("Bearer ") or req.headers.get("x-api-key", "")
        text = "x" * offset + sent + " trailing"
        body = json.dumps({"error": {"message": text, "type": "t"}}).encode() if as_json else text.encode()
        writer.write(response(status, body))

    return run


CUTS = [
    # (status, JSON body?, offsets around the cut that applies: 500 in _classify, 200/120 in body quoting)
    (400, True, range(420, 482, 3)),
    (502, False, range(150, 200, 3)),
    (200, False, range(70, 120, 3)),
]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize(("status", "as_json", "offsets"), CUTS)
def test_an_echoed_key_straddling_a_cut_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, api: str, status: int, as_json: bool, offsets: range
) -> None:
    monkeypatch.setenv("K_ECHO", KEY)
    seen = []
    for offset in offsets:
        with hostile(echo_at(offset, status, as_json)) as srv:
            p = (
                OpenAICompatible(srv.base_url, api_key_env="K_ECHO")
                if api == "openai"
                else Anthropic(srv.url, api_key_env="K_ECHO")
            )
            with Cascade(rung(p), on_exhausted="best_effort") as c:
                try:
                    seen.append(everything(c.run_sync(MSG)))
                except CascadeError as exc:
                    seen.append(everything(exc))
            sent = srv.requests[0].headers.get("authorization") or srv.requests[0].headers.get("x-api-key")
            assert KEY in str(sent)  # the key really went out, and came back in the body
    text = "\n".join(seen)
    assert "[redacted]" in text
    assert leaked(text) == []


# -- keys passed as headers ----------------------------------------------------------------------------------
def header_echo() -> Any:
    async def run(req: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response(401, json.dumps({"error": {"message": f"bad credentials {req.headers}"}}).encode()))

    return run


@pytest.mark.parametrize(
    ("headers", "secret_headers"),
    [({"api-key": KEY}, ()), ({"X-Api-Key": KEY}, ()), ({"Authorization": f"Bearer {KEY}"}, ()),
     ({"X-Custom-Token": KEY}, ("x-custom-token",))],
)  # fmt: skip
def test_keys_in_headers_are_redacted(headers: dict[str, str], secret_headers: tuple[str, ...]) -> None:
    """Azure-style ``api-key`` (and any header the caller marks secret) was never redacted."""
    with hostile(header_echo()) as srv:
        p = OpenAICompatible(srv.base_url, headers=headers, secret_headers=secret_headers)
        assert leaked(repr(p) + repr(vars(p))) == []
        with Cascade(rung(p), on_exhausted="best_effort") as c:
            text = everything(c.run_sync(MSG))
        name = next(iter(headers)).lower()
        assert KEY in srv.requests[0].headers[name]  # sent as given
    assert "[redacted]" in text
    assert leaked(text) == []


# -- frame locals --------------------------------------------------------------------------------------------
def caller_error(monkeypatch: pytest.MonkeyPatch, api: str) -> CallerError:
    monkeypatch.setenv("K_LOCALS", KEY)
    body = json.dumps({"error": {"message": "invalid parameter", "type": "invalid_request_error"}}).encode()

    async def bad_request(_req: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response(400, body))

    with hostile(bad_request) as srv:
        p = (
            OpenAICompatible(srv.base_url, api_key_env="K_LOCALS")
            if api == "openai"
            else Anthropic(srv.url, api_key_env="K_LOCALS")
        )
        with Cascade(rung(p)) as c, pytest.raises(CallerError) as info:
            c.run_sync(MSG, metadata={"case": "locals"})
        assert KEY in srv.requests[0].headers["authorization" if api == "openai" else "x-api-key"]
        srv.requests.clear()  # this test's own frame is in the traceback too: only the library's may be judged
    return info.value


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_the_key_is_not_in_any_frame_local_of_a_caller_error(monkeypatch: pytest.MonkeyPatch, api: str) -> None:
    exc = caller_error(monkeypatch, api)
    frames = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert "K_LOCALS" in frames or "complete" in frames  # the library's frames are there, with their locals
    assert leaked(frames) == []


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_sentry_with_default_settings_never_receives_the_key(monkeypatch: pytest.MonkeyPatch, api: str) -> None:
    sentry_sdk = pytest.importorskip("sentry_sdk", reason="sentry-sdk is a dev dependency")
    from sentry_sdk.transport import Transport

    envelopes: list[bytes] = []

    class Local(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            envelopes.append(envelope.serialize())

    exc = caller_error(monkeypatch, api)
    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=Local, default_integrations=False)
    try:
        sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(2)
    finally:
        sentry_sdk.get_client().close()
    sent = b"\n".join(envelopes).decode("utf-8", "replace")
    assert '"vars"' in sent  # frame locals were captured (sentry's default) ...
    assert "_post" in sent
    assert leaked(sent) == []  # ... and none of them held the key
