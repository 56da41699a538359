"""A real Prometheus scrapes a PrometheusSink over HTTP, loads the shipped rules and raises the top-rung alert
when a scripted incident (the top rung answering 500s until its circuit opens) hits a real cascade."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from checks import is_json

pytest.importorskip("prometheus_client", reason="PrometheusSink needs the [metrics] extra")

from prometheus_client import CollectorRegistry
from test_prometheus_rules import dashboard_exprs

from cascade import Cascade, CircuitBreaker, OpenAICompatible, RetryPolicy, Rung
from cascade.metrics import PrometheusSink
from cascade.testing import Reply, TestServer

RULES = Path(str(files("cascade.metrics"))) / "alerts.yml"
DEADLINE_S = 30.0
"""Longest wait for any one thing Prometheus must do (be ready, scrape, raise the alert)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[PrometheusSink, int]]:
    sink = PrometheusSink(CollectorRegistry())
    httpd, port = sink.serve(0)  # a real HTTP exporter on 127.0.0.1 serving the sink's registry
    yield sink, port
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def prometheus(sink: tuple[PrometheusSink, int], tmp_path: Path) -> Iterator[httpx.Client]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not found: Debian's prometheus package is not installed (make test-deps)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: cascade, static_configs: [{{targets: ['127.0.0.1:{sink[1]}']}}]}}\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
    try:
        wait_for(lambda: _ready(client), "Prometheus to be ready", tmp_path)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def wait_for(check: Callable[[], Any], what: str, logs: Path | None = None) -> Any:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    log = (logs / "prometheus.log").read_text()[-2000:] if logs else ""
    pytest.fail(f"waited {DEADLINE_S:.0f} s for {what}\n{log}")


def query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    reply = client.get("/api/v1/query", params={"query": promql})
    body = reply.json()
    assert reply.status_code == 200 and body["status"] == "success", (promql, body)
    return list(body["data"]["result"])


def alerts(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    return [a for a in client.get("/api/v1/alerts").json()["data"]["alerts"] if a["labels"]["alertname"] == name]


def rules_evaluated(client: httpx.Client) -> bool:
    groups = client.get("/api/v1/rules").json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    return len(rules) == 13 and all(r["health"] == "ok" for r in rules)


def test_the_top_rung_alert_fires_over_a_scripted_incident(
    server: TestServer, sink: tuple[PrometheusSink, int], prometheus: httpx.Client
) -> None:
    p = OpenAICompatible(server.base_url)
    once = RetryPolicy(attempts=1)
    ladder = [
        Rung(name="small", provider=p, model="small-m", price_in=0.1, price_out=0.4, retry=once),
        Rung(name="large", provider=p, model="large-m", price_in=10.0, price_out=30.0, retry=once),
    ]
    server.default(Reply(content="not json"), model="small-m")  # every request climbs to the top rung
    server.default(Reply(content='{"ok": true}'), model="large-m")
    breaker = CircuitBreaker(failures=3, window_s=60, cooldown_s=600)
    items = [[{"role": "user", "content": str(i)}] for i in range(5)]
    with Cascade(ladder, validators=[is_json], log=sink[0], breaker=breaker, on_exhausted="best_effort") as c:
        assert all(r.accepted for r in c.map_sync(items, progress=False))
        # healthy: scraped, every shipped rule evaluates without error, no alert
        wait_for(lambda: query(prometheus, 'cascade_requests_total{outcome="accepted"} == 5'), "the first scrape")
        wait_for(lambda: rules_evaluated(prometheus), "the shipped rules to evaluate")
        assert alerts(prometheus, "CascadeTopRungDown") == []

        server.default(Reply(status=500), model="large-m")  # the incident: the top rung fails
        results = c.map_sync(items, concurrency=1, progress=False)
    assert [a.reasons[-1] for a in results[-1].attempts][-1] == "rung_cooling_down"  # the circuit opened

    fired = wait_for(lambda: alerts(prometheus, "CascadeTopRungDown"), "CascadeTopRungDown")
    assert [(a["labels"]["rung"], a["labels"]["severity"]) for a in fired] == [("large", "critical")]
    assert fired[0]["state"] in ("pending", "firing")  # pending first: its `for` is 2 minutes
    assert "Top rung large is down" in fired[0]["annotations"]["summary"]
    [series] = query(prometheus, "cascade_breaker_open")
    assert series["metric"]["rung"] == "large" and series["value"][1] == "1"


def test_every_dashboard_query_runs_on_a_real_prometheus(prometheus: httpx.Client) -> None:
    """Grafana's variables replaced by values, each panel's PromQL is accepted by Prometheus itself."""
    for expr in dashboard_exprs():
        promql = expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$rung", ".*")
        query(prometheus, promql)
