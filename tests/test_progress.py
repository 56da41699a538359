"""Batch progress: the callback's counts and spend, the bar on a real terminal, whole lines elsewhere."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from collections.abc import Iterator
from typing import Any, TextIO

import pytest
from checks import is_json

from cascade import Cascade, CascadeResult, ConfigError, OpenAICompatible, Rung
from cascade._progress import BatchProgress, ProgressTracker
from cascade.testing import Reply, TestServer

N = 6


def cascade_of(server: TestServer) -> Cascade:
    p = OpenAICompatible(server.base_url)
    return Cascade(
        [
            Rung(name="small", provider=p, model="small-m", price_in=1.0, price_out=2.0),
            Rung(name="large", provider=p, model="large-m", price_in=10.0, price_out=20.0),
        ],
        validators=[is_json],
        on_exhausted="best_effort",
    )


def items(n: int = N) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": str(i)}] for i in range(n)]


def script(server: TestServer) -> None:
    """Even items are accepted by small; odd ones escalate; item 5 fails on both rungs."""

    def small(body: dict[str, Any]) -> Reply:
        i = int(body["messages"][-1]["content"])
        return Reply(content="{}" if i % 2 == 0 else "no", tokens_in=10, tokens_out=5)

    def large(body: dict[str, Any]) -> Reply:
        i = int(body["messages"][-1]["content"])
        return Reply(content="no" if i == 5 else "{}", tokens_in=10, tokens_out=5)

    server.responder("small-m", small)
    server.responder("large-m", large)


def test_callback_sees_every_result_with_counts_spend_and_projection(server: TestServer) -> None:
    script(server)
    seen: list[BatchProgress] = []
    with cascade_of(server) as c:
        results = c.map_sync(items(), concurrency=2, on_progress=seen.append, progress=False)
    assert [p.done for p in seen] == list(range(1, N + 1))
    assert all(p.total == N for p in seen)
    last = seen[-1]
    assert last.accepted == sum(r.accepted for r in results) == 5
    assert last.failed == 1
    assert last.escalated == sum(r.escalations > 0 for r in results) == 3
    assert last.spend_usd == pytest.approx(sum(r.cost_usd for r in results))
    assert last.projected_usd == pytest.approx(last.spend_usd)  # nothing left to project at the end
    assert last.accepted_rate == pytest.approx(5 / 6) and last.escalation_rate == pytest.approx(0.5)
    for p in seen:  # the projection is the average so far times the batch
        assert p.projected_usd == pytest.approx(p.spend_usd / p.done * N)
    assert "6/6 · 83.3% accepted · 50.0% escalated · 1 failed · $" in last.line()


def test_inputs_without_len_have_no_total_and_no_projection(server: TestServer) -> None:
    script(server)
    seen: list[BatchProgress] = []
    with cascade_of(server) as c:
        c.map_sync(iter(items(3)), on_progress=seen.append, progress=False)
    assert [(p.done, p.total, p.projected_usd) for p in seen] == [(1, None, None), (2, None, None), (3, None, None)]
    assert seen[-1].line().startswith("3 · ")


def test_resumed_results_cost_nothing_now_and_do_not_skew_the_projection() -> None:
    tracker = ProgressTracker([0] * 4, progress=False)
    for cost, resumed in ((1.0, True), (1.0, True), (0.5, False)):
        tracker.add(CascadeResult(request_id="r", accepted=True, outcome="accepted", cost_usd=cost, resumed=resumed))
    s = tracker.state
    assert (s.done, s.resumed, s.spend_usd) == (3, 2, 0.5)
    assert s.projected_usd == pytest.approx(1.0)  # one more request at this run's 0.5 each


def test_default_prints_nothing_when_stderr_is_not_a_terminal(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    script(server)
    with cascade_of(server) as c:
        c.map_sync(items())
    assert capsys.readouterr().err == ""


def test_progress_true_off_a_terminal_writes_whole_lines_from_a_running_loop(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in a notebook without widgets: imap from inside a running loop, plain lines, no escape codes."""
    script(server)

    async def go(c: Cascade) -> list[int]:
        return [i async for i, _ in c.imap(items(), progress=True)]

    with cascade_of(server) as c:
        got = asyncio.run(go(c))
    assert sorted(got) == list(range(N))
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert err.endswith("\n") and err.splitlines()[-1].startswith("cascade: 6/6 · 83.3% accepted")
    assert err.splitlines()[-1].endswith("(done)")


def test_a_batch_left_early_still_ends_its_progress_line(
    server: TestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    script(server)

    async def go(c: Cascade) -> None:
        batch = c.imap(items(), concurrency=1, progress=True)
        async for _ in batch:
            break
        await batch.aclose()  # type: ignore[attr-defined]

    with cascade_of(server) as c:
        asyncio.run(go(c))
    err = capsys.readouterr().err
    assert err.startswith("cascade: 1/6 · ") and err.endswith(" (stopped)\n")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, TextIO]]:
    """A real pseudo-terminal, 160 columns wide: the master end (to read the screen) and the slave stream.
    ``batch_on_terminal`` puts the stream on sys.stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    stream = os.fdopen(slave, "w", encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.delenv("NO_COLOR", raising=False)
    yield master, stream
    stream.close()
    os.close(master)


def screen(master: int) -> str:
    os.set_blocking(master, False)
    out = b""
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except (BlockingIOError, OSError):
        pass
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode("utf-8", "replace"))


def batch_on_terminal(
    server: TestServer, terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch, **options: Any
) -> str:
    """What a scripted batch draws on the terminal, with ``map_sync(**options)``. The stream is put on
    sys.stderr here, not in the fixture: pytest's capture resets sys.stderr after fixtures run."""
    script(server)
    master, stream = terminal
    monkeypatch.setattr(sys, "stderr", stream)
    with cascade_of(server) as c:
        c.map_sync(items(), **options)
    return screen(master)


def test_default_on_a_terminal_draws_the_rich_bar(
    server: TestServer, terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("rich", reason="the bar needs rich: pip install 'cascade-router[cli]'")
    shown = batch_on_terminal(server, terminal, monkeypatch)
    assert "6/6" in shown and "83.3% accepted · 50.0% escalated · 1 failed" in shown
    assert "━" in shown  # the bar itself, not the plain line
    assert "cascade: " not in shown


def test_a_terminal_without_rich_gets_plain_lines(
    server: TestServer, terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # as if the [cli] extra were not installed
    shown = batch_on_terminal(server, terminal, monkeypatch)
    assert shown.replace("\r\n", "\n").startswith("cascade: 6/6 · 83.3% accepted")


def test_progress_false_draws_nothing_on_a_terminal(
    server: TestServer, terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert batch_on_terminal(server, terminal, monkeypatch, progress=False) == ""


def test_bad_progress_arguments_are_named(server: TestServer) -> None:
    with cascade_of(server) as c:
        with pytest.raises(ConfigError, match=r"^progress: expected True, False or None \(auto\), got 'yes'$"):
            c.map_sync(items(), progress="yes")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"^progress: expected True, False or None \(auto\), got 1$"):
            c.map_sync(items(), progress=1)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"^on_progress: expected a callable"):
            c.map_sync(items(), on_progress=3)  # type: ignore[arg-type]
