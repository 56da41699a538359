"""The demo's run and report over the suite's test server: the same code path as `cascade demo`,
with scripted rungs instead of llama.cpp, so the report's arithmetic is checked on every CI run."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import pytest
from demo_helpers import label_reply

from cascade import Ladder, OpenAICompatible, Rung
from cascade.demo._report import (
    DeadRung,
    column_width,
    full_report,
    goal_line,
    refuse_dead_rungs,
    repriced,
    task_report,
    without_idle,
)
from cascade.demo._run import TaskRun, Tuning, params_for, run_task, validators_for
from cascade.demo._tasks import TICKET_TASK, load_items
from cascade.testing import Reply, TestServer

ITEMS = load_items(TICKET_TASK)[:6]
GOLD = {item["text"]: item["gold"] for item in ITEMS}
PRICES = {"small": (0.04, 0.04), "medium": (0.10, 0.10), "large": (0.20, 0.60)}


def _script(server: TestServer) -> None:
    """small: always cut off (accepts nothing); medium: right, sure on even items, unsure on odd; large: right."""
    server.responder("small", lambda body: Reply(content='{"label": "bil', finish_reason="length", tokens_in=100))

    def medium(body: dict[str, Any]) -> Reply:
        text = body["messages"][-1]["content"]
        sure = ITEMS.index(next(i for i in ITEMS if i["text"] == text)) % 2 == 0
        return label_reply(GOLD[text], 0.95 if sure else 0.4)

    server.responder("medium", medium)
    server.responder("large", lambda body: label_reply(GOLD[body["messages"][-1]["content"]], 0.99))


def _ladder(server: TestServer, names: tuple[str, ...]) -> Ladder:
    tuning = Tuning()
    rungs = [
        Rung(
            name=n,
            provider=OpenAICompatible(server.base_url),
            model=n,
            price_in=PRICES[n][0],
            price_out=PRICES[n][1],
            params=params_for(TICKET_TASK, n, tuning),
            validators=validators_for(TICKET_TASK, tuning.threshold("tickets", n), top=(n == names[-1])),
        )
        for n in names
    ]
    return Ladder(rungs)


def _runs(server: TestServer, skip_idle: int | None = None, concurrency: int = 1) -> tuple[TaskRun, TaskRun]:
    _script(server)

    async def go() -> tuple[TaskRun, TaskRun]:
        ladder = _ladder(server, ("small", "medium", "large"))
        cascade = await run_task(
            TICKET_TASK, ITEMS, ladder, mode="cascade", skip_idle=skip_idle, concurrency=concurrency
        )
        alone = await run_task(TICKET_TASK, ITEMS, _ladder(server, ("large",)), mode="top_only")
        return cascade, alone

    return asyncio.run(go())


def test_rungs_accept_what_their_checks_pass(server: TestServer) -> None:
    cascade, alone = _runs(server)
    assert [o.result.answered_by for o in cascade.outcomes] == ["medium", "large"] * 3
    assert cascade.correct == alone.correct == 6
    stats = {row["rung"]: row for row in cascade.rung_stats()}
    assert stats["small"]["accepted"] == 0 and stats["small"]["reasons"] == {"truncated": 6}
    assert stats["medium"]["accepted"] == 3 and stats["medium"]["reasons"] == {"low_confidence": 3}
    assert stats["large"]["reached"] == 3


def test_logprobs_are_asked_only_where_a_check_reads_them(server: TestServer) -> None:
    _runs(server)
    asked = {r.model: bool(r.body.get("logprobs")) for r in server.requests}
    assert asked == {"small": True, "medium": True, "large": False}


def test_report_shows_the_cascade_without_its_idle_rung(server: TestServer) -> None:
    cascade, alone = _runs(server)
    small_cost = sum(a.cost_usd for o in cascade.outcomes for a in o.result.attempts if a.rung == "small")
    cost_without, _ = without_idle(cascade)
    assert small_cost > 0 and math.isclose(cost_without, cascade.cost_usd - small_cost)
    report = full_report([(cascade, alone)], {}, None)
    assert "rung small accepted nothing" in report and "without small" in report
    shares = re.search(r"vs large alone\s+(\d+)%\s+(\d+)%", report)
    assert shares is not None
    assert int(shares[1]) == round(100 * cascade.cost_usd / alone.cost_usd)
    assert int(shares[2]) == round(100 * cost_without / alone.cost_usd)
    assert int(shares[2]) < 100 < int(shares[1])  # the idle rung is what makes the cascade dearer here
    assert re.search(r"accuracy\s+6/6 \(100%\)\s+6/6 \(100%\)\s+6/6 \(100%\)", report)


def test_the_summary_over_tasks_adds_them_up(server: TestServer) -> None:
    cascade, alone = _runs(server)
    report = full_report([(cascade, alone), (cascade, alone)], {}, None)
    shares = re.search(r"costs (\d+)% of the top rung alone; without the rungs that accepted nothing, (\d+)%", report)
    assert shares is not None and int(shares[2]) == round(100 * without_idle(cascade)[0] / alone.cost_usd)
    assert "cascade 12/12 (100%) right" in report and "(+0 right answers against it)" in report


def test_an_idle_rung_is_skipped_and_the_report_counts_only_its_calls(server: TestServer) -> None:
    cascade, _alone = _runs(server, skip_idle=2)
    small_calls = [i for i, o in enumerate(cascade.outcomes) if o.result.attempts[0].outcome != "skipped"]
    assert small_calls == [0, 1, 3, 5]  # two misses, then a probe every second request
    assert [o.result.answered_by for o in cascade.outcomes] == ["medium", "large"] * 3  # nothing lost
    small = cascade.rung_stats()[0]
    assert small["reached"] == 4 and small["reasons"] == {"truncated": 4, "rung_idle": 2}
    assert len([r for r in server.requests if r.model == "small"]) == 4


def test_concurrent_items_keep_their_order_and_answers(server: TestServer) -> None:
    cascade, alone = _runs(server, concurrency=4)
    assert [o.id for o in cascade.outcomes] == [i["id"] for i in ITEMS]
    assert [o.result.answered_by for o in cascade.outcomes] == ["medium", "large"] * 3
    assert cascade.correct == alone.correct == 6 and cascade.concurrency == 4


def test_a_rung_that_answers_nothing_stops_the_demo_by_name(server: TestServer) -> None:
    # A dead server behind a rung: every call fails. The demo must not report 0/N right at $0.
    _script(server)
    server.responder("medium", lambda body: Reply(status=503))

    async def go() -> TaskRun:
        return await run_task(TICKET_TASK, ITEMS, _ladder(server, ("medium", "large")), mode="cascade")

    run = asyncio.run(go())
    with pytest.raises(DeadRung, match=r"rung 'medium' answered none of its 6 calls on tickets \(server_error 6\)"):
        refuse_dead_rungs(run)
    refuse_dead_rungs(asyncio.run(run_task(TICKET_TASK, ITEMS, _ladder(server, ("large",)), mode="top_only")))


def test_goal_line_says_by_how_much_it_is_missed() -> None:
    line = goal_line(right=45, cost=0.7, wall=30.0, b_right=47, b_cost=1.0, b_wall=25.0)
    assert "accuracy -2 items (missed" in line and "cost 70% (missed" in line and "30.0 s vs 25.0 s (missed)" in line
    line = goal_line(right=46, cost=0.5, wall=20.0, b_right=47, b_cost=1.0, b_wall=25.0)
    assert line.count("met") == 3 and "missed" not in line


def test_repricing_at_the_rungs_own_prices_gives_the_measured_cost(server: TestServer) -> None:
    cascade, alone = _runs(server)
    assert math.isclose(repriced(cascade, PRICES), cascade.cost_usd, rel_tol=1e-9)
    doubled = {k: (2 * a, 2 * b) for k, (a, b) in PRICES.items()}
    assert math.isclose(repriced(alone, doubled), 2 * alone.cost_usd, rel_tol=1e-9)
    report = full_report([(cascade, alone)], {}, None, vendor_prices=doubled, vendor_source="doubled")
    share = round(100 * cascade.cost_usd / alone.cost_usd)
    assert f"at doubled prices instead: the cascade costs {share}% of the top rung alone" in report


def test_every_column_header_stands_apart_from_its_neighbour(server: TestServer) -> None:
    """A long label ("without small+medium") was glued to the header before it in 18-character columns."""
    cascade, alone = _runs(server)
    header = next(line for line in task_report(cascade, alone) if "cascade" in line and "alone" in line)
    assert re.search(r"cascade\s{2,}without small\s{2,}large alone$", header), header
    labels = ["cascade", "without small+medium+another", "x" * 30]
    assert all(len(c) + 2 <= column_width(labels) for c in labels) and column_width(["a"]) == 18


def test_items_nobody_accepted_say_whose_answer_was_used(server: TestServer) -> None:
    server.default(Reply(content='{"label": "bil', finish_reason="length", tokens_in=100))  # cut off
    server.responder("large", lambda body: Reply(status=401))  # the top rung refuses: no answer of its own

    async def go() -> TaskRun:
        return await run_task(TICKET_TASK, ITEMS[:2], _ladder(server, ("medium", "large")), mode="cascade")

    run = asyncio.run(go())
    lines = "\n".join(task_report(run, None))
    assert "2 item(s) not accepted by any rung: the best-effort answer of medium was used for 2" in lines
    assert "the top rung's answer was used" not in lines
