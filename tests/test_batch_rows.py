"""The core under every engine: a DataFrame of rows through one worker's cascade (no cluster needed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pandas import DataFrame

pd = pytest.importorskip("pandas", reason="pandas comes with the [ray] extra: pip install 'cascade-router[ray]'")

from batch_jobs import BUDGET_USD, PROMPT, ServerLadder, answer, events, tickets  # noqa: E402

from cascade import Cascade, Completion, CompletionRequest, ConfigError, Rung  # noqa: E402
from cascade.ray import JOB_BUDGET_REASON, BatchRunner, DoneRows, JobBudget, RowSpec  # noqa: E402
from cascade.testing import TestServer  # noqa: E402

SPEC = RowSpec(prompt=PROMPT, id_column="id", fields=("label",))


def frame(n: int) -> DataFrame:
    return pd.DataFrame(tickets(n))


@pytest.fixture
def labelled(server: TestServer) -> TestServer:
    server.responder("small-m", answer)
    server.responder("large-m", answer)
    return server


def test_every_row_comes_back_once_with_its_own_answer(labelled: TestServer) -> None:
    rows = frame(60).sample(frac=1, random_state=3)  # shuffled: answers must follow their rows
    runner = BatchRunner(ServerLadder(labelled.base_url), SPEC, concurrency=8)
    try:
        out = runner.answer(rows)
    finally:
        runner.close()
    assert list(out.index) == list(rows.index)
    assert list(out["id"]) == list(rows["id"])
    assert (out["label"] == [f"L{i}" for i in out["id"]]).all()
    assert (out["answered_by"] == ["large" if i % 5 == 0 else "small" for i in out["id"]]).all()
    assert list(out["reasons"]) == [["schema_invalid"] if i % 5 == 0 else [] for i in out["id"]]
    assert out["accepted"].all() and (out["outcome"] == "accepted").all()
    assert (out["cost_usd"] > 0).all() and (out["cost_usd"] <= BUDGET_USD).all()


class Explodes:
    """A provider with a bug: any prompt containing 'boom' raises a plain exception, not a ProviderError."""

    name = "explodes"

    async def complete(self, request: CompletionRequest) -> Completion:
        if "boom" in str(request.messages[-1]["content"]):
            raise ZeroDivisionError("provider bug")
        return Completion(text="fine", tokens_in=3, tokens_out=1)

    async def aclose(self) -> None:
        return None


def exploding(log: str | None) -> Cascade:
    return Cascade([Rung(name="only", provider=Explodes(), model="m", price_in=1, price_out=1)], log=log)


def test_a_raising_request_or_a_broken_row_is_an_error_row_not_a_lost_one(tmp_path: Path) -> None:
    rows = pd.DataFrame({"id": [1, 2, 3, 4, 5], "text": ["ok", "boom", "ok too", None, "boom again"]})
    runner = BatchRunner(exploding, RowSpec(messages="text", id_column="id"), concurrency=2, log_dir=tmp_path)
    try:
        out = runner.answer(rows)
    finally:
        runner.close()
    assert list(out["id"]) == [1, 2, 3, 4, 5]
    assert list(out["outcome"]) == ["accepted", "error", "accepted", "error", "error"]
    assert "ZeroDivisionError: provider bug" in out["error"][1]
    assert "expected a list of messages or a string" in out["error"][3]
    assert [a if isinstance(a, str) else None for a in out["answer"]] == ["fine", None, "fine", None, None]
    logged = {e["request_id"]: e["outcome"] for e in events(tmp_path, "request")}
    assert logged == {"row-1": "accepted", "row-2": "error", "row-3": "accepted", "row-5": "error"}


def test_a_row_the_prompt_cannot_be_filled_from_fails_alone_under_its_id(labelled: TestServer) -> None:
    spec = RowSpec(prompt="Ticket {id}: {colour} {tags[0]}", id_column="id")
    rows = pd.DataFrame({"id": [1, 2, 3], "colour": ["red", "green", "blue"], "tags": [["urgent"], 5, ["low"]]})
    runner = BatchRunner(ServerLadder(labelled.base_url), spec)
    try:
        out = runner.answer(rows)
        missing = runner.answer(rows.drop(columns=["colour"]))
    finally:
        runner.close()
    assert list(out["outcome"]) == ["accepted", "error", "accepted"]  # row 2: 5[0] is a TypeError
    assert list(out["request_id"]) == ["row-1", "row-2", "row-3"]
    assert "prompt: cannot fill" in out["error"][1]
    assert (missing["outcome"] == "error").all() and "'colour'" in missing["error"][0]


def test_a_restart_answers_nothing_twice_and_gives_the_answers_back(labelled: TestServer, tmp_path: Path) -> None:
    first = BatchRunner(ServerLadder(labelled.base_url), SPEC, log_dir=tmp_path)
    try:
        before = first.answer(frame(40))
    finally:
        first.close()
    calls = len(labelled.requests)
    again = BatchRunner(ServerLadder(labelled.base_url), SPEC, log_dir=tmp_path)
    try:
        after = again.answer(frame(50))
    finally:
        again.close()
    assert after["resumed"].tolist() == [True] * 40 + [False] * 10
    assert len(labelled.requests) - calls == sum(1 + (i % 5 == 0) for i in range(40, 50))
    assert after["label"].tolist() == [f"L{i}" for i in range(50)]  # resumed labels re-read from the log
    assert after["answer"][:40].tolist() == before["answer"].tolist()
    assert after["cost_usd"][:40].tolist() == pytest.approx(before["cost_usd"].tolist())
    assert len({e["_file"] for e in events(tmp_path, "request")}) == 2  # one log per worker run


def test_done_rows_reads_only_whole_lines_and_gzip(tmp_path: Path) -> None:
    line = {"event": "request", "v": 1, "request_id": "row-1", "outcome": "accepted", "accepted": True}
    live = tmp_path / "worker-a.jsonl"
    text = json.dumps(line)
    live.write_text(text[:20])  # another worker is half-way through writing this line
    with gzip.open(tmp_path / "worker-b.jsonl.gz", "wt") as f:
        f.write(json.dumps({**line, "request_id": "row-2"}) + "\n")
    done = DoneRows(tmp_path)
    done.refresh()
    assert set(done.done) == {"row-2"} and not done.bad_lines
    live.write_text(text + "\n" + json.dumps({**line, "request_id": "row-2"}) + "\n")
    done.refresh()
    assert set(done.done) == {"row-1", "row-2"} and done.repeats == 1


class Ledger:
    """An in-process job cap, for the core's side of the contract (the Ray actor is tested in test_ray)."""

    def __init__(self, cap: float) -> None:
        self.cap, self.spent, self.reserved, self.refused = cap, 0.0, 0.0, 0

    async def reserve(self, amount: float) -> bool:
        if self.spent + self.reserved + amount > self.cap:
            self.refused += 1
            return False
        self.reserved += amount
        return True

    async def settle(self, reserved: float, actual: float) -> None:
        self.reserved -= reserved
        self.spent += actual


def test_the_job_cap_stops_the_job_and_never_lets_spend_pass_it(labelled: TestServer, tmp_path: Path) -> None:
    ledger = Ledger(cap=10 * BUDGET_USD)
    runner = BatchRunner(ServerLadder(labelled.base_url), SPEC, concurrency=4, log_dir=tmp_path, job_cap=ledger)
    try:
        out = runner.answer(frame(300))
    finally:
        runner.close()
    refused = out[out["reasons"].map(lambda r: r == [JOB_BUDGET_REASON])]
    assert len(out) == 300 and 0 < len(refused) < 300
    assert ledger.spent <= ledger.cap and ledger.reserved == pytest.approx(0)
    assert out["cost_usd"].sum() == pytest.approx(ledger.spent)
    assert (refused["outcome"] == "error").all() and refused["answer"].isna().all()
    logged = {e["request_id"] for e in events(tmp_path, "request")}
    assert logged == set(out[~out.index.isin(refused.index)]["request_id"])  # refused rows: never sent


def test_misuse_is_refused_with_the_field_named(labelled: TestServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="messages/prompt: give exactly one"):
        RowSpec(messages="m", prompt="p")
    with pytest.raises(ConfigError, match=r"fields: .*'outcome'"):
        RowSpec(prompt="p", fields=("outcome",))
    with pytest.raises(ConfigError, match="concurrency: expected an integer >= 1, got 0"):
        BatchRunner(ServerLadder(labelled.base_url), SPEC, concurrency=0)
    with pytest.raises(ConfigError, match="factory: the Cascade does not write to its log argument"):
        BatchRunner(lambda log: ServerLadder(labelled.base_url)(None), SPEC, log_dir=tmp_path)
    with pytest.raises(ConfigError, match="factory: expected it to return a Cascade"):
        BatchRunner(lambda log: "a cascade", SPEC)  # type: ignore[arg-type,return-value]
    for bad in (-1, float("nan"), True, "5"):
        with pytest.raises(ConfigError, match=f"cap_usd: expected a finite number >= 0 \\(USD\\), got {bad!r}"):
            JobBudget(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="budget: a job-wide cap needs a per-request cap"):
        BatchRunner(ServerLadder(labelled.base_url, budget_usd=None), SPEC, job_cap=Ledger(1.0))
    runner = BatchRunner(ServerLadder(labelled.base_url), SPEC)
    try:
        with pytest.raises(ConfigError, match=r"the rows already have \['answer'\]"):
            runner.answer(frame(2).assign(answer="x"))
        with pytest.raises(ConfigError, match=r"columns: \['id'\] not in the rows' columns"):
            runner.answer(frame(2).drop(columns=["id"]))
    finally:
        runner.close()
