"""Who may call the gateway and what it may spend: bearer keys (hashed, never logged), per-key daily
caps that hold under concurrent load, sessions and deadlines from headers, and how ``cascade serve``
is configured (TOML ladders, keys, loopback-only ``--no-auth``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import textwrap
from pathlib import Path

import httpx
import pytest
from checks import is_json
from gateway_helpers import ladder, serve

from cascade import Cascade, ConfigError, Ladder, Rung, StickySessions
from cascade._cli import main as cli_main
from cascade.gateway import ApiKey, Gateway, GatewayServer, MemoryState, hash_key, new_key
from cascade.gateway._cli import build
from cascade.testing import Reply, TestServer

openai = pytest.importorskip("openai", reason="the gateway client tests need the openai package (dev extra)")

MSG = [{"role": "user", "content": "Classify: my card was charged twice"}]


def test_keys_are_required_checked_and_never_logged(
    server: TestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key, wrong = new_key(), new_key()
    server.default(Reply(content="{}"))
    log = tmp_path / "gateway.jsonl"
    caplog.set_level(logging.DEBUG)
    with serve(server, [is_json], cascade={"log": log}, keys=[ApiKey("team-a", hash_key(key))]) as gw:
        good = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        answer = good.chat.completions.with_raw_response.create(model="cascade/tickets", messages=MSG)
        for bad in (wrong, "", key + "x", key[:-1]):
            with pytest.raises(openai.AuthenticationError) as info:
                openai.OpenAI(base_url=gw.base_url, api_key=bad or "-", max_retries=0).models.list()
            assert key not in json.dumps(info.value.body)
        naked = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "cascade/tickets", "messages": MSG})
        basic = httpx.get(f"{gw.base_url}/models", headers={"Authorization": f"Basic {key}"})
    assert answer.parse().choices[0].message.content == "{}"
    assert (naked.status_code, basic.status_code) == (401, 401)
    assert naked.json()["error"]["code"] == "invalid_api_key"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["metadata"]["api_key"] for e in events if "metadata" in e} == {"team-a"}  # the name, not the key
    everything = log.read_text() + caplog.text + answer.text + naked.text + str(answer.headers)
    assert key not in everything and hash_key(key) not in everything
    assert "csk-" not in repr(ApiKey("team-a", hash_key(key)))


def test_daily_cap_holds_under_concurrent_load(server: TestServer) -> None:
    server.default(Reply(content='{"ok": true}', tokens_in=20, tokens_out=10))
    cost = (20 * 1000 + 10 * 1000) / 1e6  # $0.03 per request at $1000/M tokens
    key, cap = new_key(), 0.25
    state = MemoryState()
    p = ladder(server).rungs[0].provider
    one = Ladder([Rung(name="only", provider=p, model="only-m", price_in=1000, price_out=1000)])
    gateway = Gateway(
        {"tickets": Cascade(one, validators=[is_json])},
        keys=[ApiKey("team-a", hash_key(key), daily_usd=cap)],
        state=state,
        request_reserve_usd=0.1,  # each request runs under a $0.10 budget, reserved from the day's cap
    )
    body = {"model": "cascade/tickets", "messages": MSG}

    async def burst(base_url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            return await asyncio.gather(*(client.post(f"{base_url}/chat/completions", json=body) for _ in range(24)))

    with GatewayServer(gateway) as gw:
        responses = asyncio.run(burst(gw.base_url))
        for _ in range(10):  # then one at a time until the cap refuses
            responses.append(
                httpx.post(f"{gw.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            )
            if responses[-1].status_code != 200:
                break
        with pytest.raises(openai.RateLimitError) as info:  # the client would retry a 429: told not to
            openai.OpenAI(base_url=gw.base_url, api_key=key).chat.completions.create(
                model="cascade/tickets", messages=MSG
            )
        spent = asyncio.run(state.spent(next(iter(state._values))))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert refused and {(r.status_code, r.json()["error"]["code"]) for r in refused} == {(429, "spend_cap_exceeded")}
    assert 1 <= len(ok) <= cap // cost
    assert sum(float(r.headers["x-cascade-cost-usd"]) for r in ok) == pytest.approx(spent)
    assert spent == pytest.approx(len(ok) * cost) and spent <= cap
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(server.requests) == len(ok)  # refused requests never reached a model


def test_a_request_refused_before_any_call_costs_the_key_nothing(server: TestServer) -> None:
    key, state = new_key(), MemoryState()
    keys = [ApiKey("team-a", hash_key(key), daily_usd=1.0)]
    with serve(server, [is_json], keys=keys, state=state) as gw:
        oa = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        for _ in range(3):
            with pytest.raises(openai.BadRequestError, match="role"):
                oa.chat.completions.create(model="cascade/tickets", messages=[{"role": "wizard", "content": "x"}])
    [account] = list(state._values)
    assert asyncio.run(state.spent(account)) == 0.0  # the $0.10 reservations were all given back


def test_sessions_and_deadlines_from_headers(server: TestServer) -> None:
    server.script("small-m", Reply(content="not json"))
    server.default(Reply(content="{}"))
    sticky = Cascade(ladder(server), validators=[is_json], gates=[StickySessions(ttl_s=60)])
    with GatewayServer(Gateway({"tickets": sticky})) as gw:
        oa = openai.OpenAI(base_url=gw.base_url, api_key="-", max_retries=0)
        session = {"x-cascade-session": "conversation-7"}
        first = oa.chat.completions.create(model="cascade/tickets", messages=MSG, extra_headers=session)
        later = [{"role": "user", "content": "Another question, same conversation"}]
        second = oa.chat.completions.with_raw_response.create(
            model="cascade/tickets", messages=later, extra_headers=session
        )
        fresh = oa.chat.completions.create(model="cascade/tickets", messages=later)
        bad = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "cascade/tickets", "messages": MSG},
            headers={"x-cascade-deadline-ms": "soon"},
        )
    assert first.model == "large-m" and second.parse().model == "large-m"
    attempts = second.parse().model_extra["cascade"]["attempts"]
    assert [(a["rung"], a["outcome"], a["reasons"]) for a in attempts] == [
        ("small", "skipped", ["sticky"]),
        ("large", "accepted", []),
    ]
    assert fresh.model == "small-m"  # no session header: its own conversation, from the bottom
    assert bad.status_code == 400 and "x-cascade-deadline-ms" in bad.json()["error"]["message"]

    server.reset()
    server.default(Reply(content="{}", delay_s=30))
    with serve(server, [is_json]) as gw:
        oa = openai.OpenAI(base_url=gw.base_url, api_key="-", max_retries=0)
        with pytest.raises(openai.UnprocessableEntityError) as info:
            oa.chat.completions.create(
                model="cascade/tickets", messages=MSG, extra_headers={"x-cascade-deadline-ms": "300"}
            )
    assert info.value.body["reasons"] == ["deadline"]


def args(app: str, *more: str) -> argparse.Namespace:
    ns = argparse.Namespace(app=app, keys=None, no_auth=False, on_exhausted=None, redis=None, host="127.0.0.1")
    for flag in more:
        name, _, value = flag.lstrip("-").partition("=")
        setattr(ns, name.replace("-", "_"), value or True)
    return ns


TOML = """
[gateway]
on_exhausted = "best_effort"
sticky_ttl_s = 600
deadline_s = 20

[[gateway.keys]]
name = "team-a"
sha256 = "{sha}"
daily_usd = 5.0

[cascades.tickets]
budget_usd = 0.01
checks = {{ json_schema = {{ type = "object", required = ["label"] }} }}

[[cascades.tickets.rungs]]
name = "mini"
base_url = "{url}"
model = "small-m"
price_in = 0.15
price_out = 0.60

[[cascades.tickets.rungs]]
name = "big"
base_url = "{url}"
model = "large-m"
price_in = 2.5
price_out = 10
params = {{ temperature = 0 }}
"""


def test_a_toml_ladder_served_with_no_code(server: TestServer, tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "gateway.toml"
    path.write_text(TOML.format(sha=hash_key(key), url=server.base_url))
    server.script("small-m", Reply(content='{"other": 1}'))
    server.script("large-m", Reply(content='{"label": "billing"}'))
    app = build(args(str(path)))
    gateway: Gateway = app.state.gateway
    cascade = gateway.cascades["cascade/tickets"]
    assert (gateway.on_exhausted, cascade.budget_usd, cascade.deadline_s) == ("best_effort", 0.01, 20.0)
    assert any(isinstance(g, StickySessions) for g in cascade.gates.gates)
    with GatewayServer(gateway) as gw:
        out = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0).chat.completions.create(
            model="cascade/tickets",
            messages=MSG,
        )
    assert out.model == "large-m" and out.choices[0].message.content == '{"label": "billing"}'
    assert server.requests[1].body["temperature"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("price_in = 0.15", "price_in = -1"), "price_in"),
        (('model = "small-m"', 'modle = "small-m"'), "modle"),
        (("[gateway]", "[gateway]\nworkers = 3"), "workers"),
        (('sha256 = "', 'sha256 = "zz'), "sha256"),
        (("daily_usd = 5.0", "daily_usd = -5"), "daily_usd"),
        (("checks = {", "checks = { regexp = 'x', "), "regexp"),
    ],
)
def test_a_bad_toml_names_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(TOML.format(sha=hash_key("k"), url="http://127.0.0.1:9/v1").replace(*change, 1))
    with pytest.raises(ConfigError, match=message):
        build(args(str(path)))


def test_serve_refuses_to_run_open_except_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            from cascade import Cascade, FunctionProvider, Rung
            from cascade._types import Completion

            def make():
                answer = FunctionProvider(lambda request: Completion("hi", 1, 1))
                return {"hello": Cascade([Rung(name="f", provider=answer, model="f", price_in=0, price_out=0)])}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="needs keys"):
        build(args("myapp:make"))
    with pytest.raises(ConfigError, match="loopback"):
        build(args("myapp:make", "--no-auth", "--host=0.0.0.0"))
    app = build(args("myapp:make", "--no-auth"))
    assert list(app.state.gateway.cascades) == ["cascade/hello"]
    with pytest.raises(ConfigError, match="no attribute"):
        build(args("myapp:nothing", "--no-auth"))
    with pytest.raises(ConfigError, match="module:attribute"):
        build(args("myapp", "--no-auth"))


def test_new_key_prints_an_entry_whose_hash_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--new-key", "team-b", "--daily-usd", "2.5"]) == 0
    out, err = capsys.readouterr()
    key = err.split(": ")[-1].strip()
    assert key.startswith("csk-") and key not in out
    assert f'sha256 = "{hash_key(key)}"' in out and "daily_usd = 2.5" in out and 'name = "team-b"' in out


def test_shared_health_flags_skip_rungs_and_let_probes_through(server: TestServer) -> None:
    """The replica-sharing gate on an in-process store: what one replica publishes, another skips."""
    from cascade.gateway._health import SharedHealth

    state = MemoryState()
    publisher = SharedHealth(state, "cascade/tickets", ["small", "large"], probe_every=3)
    reader = SharedHealth(state, "cascade/tickets", ["small", "large"], probe_every=3)
    cascade = Cascade(ladder(server), validators=[is_json], on_exhausted="best_effort")
    cascade.add_gate(reader)
    server.default(Reply(content="{}"))

    async def scenario() -> list[list[str]]:
        publisher.emit({"event": "idle", "rung": "small", "to": "skipping"})
        publisher.emit({"event": "breaker", "rung": "large", "to": "open", "cooldown_s": 60})
        await publisher.drain()
        await reader.refresh()
        reasons = []
        for _ in range(3):
            result = await cascade.run(MSG)
            reasons.append([a.reasons[0] if a.reasons else a.outcome for a in result.attempts])
        await cascade.aclose()
        return reasons

    got = asyncio.run(scenario())
    # small is idle elsewhere: skipped twice, probed the third time; large's circuit is open elsewhere
    assert got[0] == ["rung_idle", "rung_cooling_down"] and got[1] == got[0]
    assert got[2] == ["accepted"]
    assert reader.flags == {"small": "idle", "large": "open"}
    assert asyncio.run(state.get("health:cascade/tickets:small:idle")) is None  # the probe accepted: active


def test_a_callers_user_id_reaches_the_log_only_hashed(server: TestServer, tmp_path: Path) -> None:
    server.default(Reply(content="{}"))
    log = tmp_path / "gateway.jsonl"
    with serve(server, [is_json], cascade={"log": log}) as gw:
        oa = openai.OpenAI(base_url=gw.base_url, api_key="-", max_retries=0)
        oa.chat.completions.create(model="cascade/tickets", messages=MSG, user="alice@example.com")
        oa.chat.completions.create(model="cascade/tickets", messages=MSG, metadata={"session_id": "bob@example.com"})
    events = [json.loads(line) for line in log.read_text().splitlines()]
    sessions = {e["metadata"]["session_id"] for e in events if e["event"] == "request"}
    assert len(sessions) == 2 and all(s.startswith("s-") for s in sessions)
    assert "alice@" not in log.read_text() and "bob@" not in log.read_text()
    assert server.requests[0].body["user"] == "alice@example.com"  # the provider still gets it, as sent


def test_a_state_store_that_does_not_answer_is_a_503_not_a_guess(server: TestServer) -> None:
    pytest.importorskip("redis", reason="needs the redis client ([gateway] extra)")
    import socket

    from cascade.gateway import RedisState

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = new_key()
    state = RedisState(f"redis://127.0.0.1:{port}/0")
    keys = [ApiKey("team-a", hash_key(key), daily_usd=1.0)]
    with serve(server, [is_json], keys=keys, state=state) as gw:
        chat = httpx.post(
            f"{gw.base_url}/chat/completions",
            json={"model": "cascade/tickets", "messages": MSG},
            headers={"Authorization": f"Bearer {key}"},
        )
        ready = httpx.get(f"{gw.url}/readyz")
    assert (chat.status_code, chat.json()["error"]["code"]) == (503, "state_unavailable")
    assert ready.status_code == 503
    assert server.requests == []  # nothing was called without knowing what the key may spend
