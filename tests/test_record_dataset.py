"""``cascade dataset --from-log``: your own traffic, logged with log_content="full", becomes recorded data
that cascade eval / tune read, holding exactly what the models answered."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from cascade import Cascade, Ladder, OpenAICompatible, Rung
from cascade._cli import main
from cascade.replay import load_dataset
from cascade.testing import Reply, TestServer
from cascade.validators import Confidence, JsonSchema

SCHEMA = {"type": "object", "properties": {"label": {"enum": ["billing", "refund"]}}, "required": ["label"]}


def _mini(request: dict[str, object]) -> Reply:
    """Sure of "billing" on easy tickets (accepted), unsure on hard ones (escalated)."""
    p = 0.95 if "easy" in json.dumps(request["messages"]) else 0.5
    tokens = [('{"label":"', 0.0, {}), ("billing", math.log(p), {"refund": math.log(1 - p)}), ('"}', 0.0, {})]
    return Reply(content='{"label":"billing"}', logprobs=tokens, tokens_in=11, tokens_out=5)


def _log_traffic(server: TestServer, log: Path, n: int = 12, content: str = "full") -> None:
    server.responder("mini", _mini)
    server.default(Reply(content='{"label": "refund"}', tokens_in=11, tokens_out=6), model="4o")
    o = OpenAICompatible(server.base_url)
    ladder = Ladder(
        [
            Rung(name="mini", provider=o, model="mini", price_in=0.15, price_out=0.6),
            Rung(name="4o", provider=o, model="4o", price_in=2.5, price_out=10.0),
        ]
    )
    items = [
        {
            "messages": [{"role": "user", "content": f"{'easy' if i % 3 == 0 else 'hard'} ticket {i}"}],
            "metadata": {"gold": {"label": "refund"}},
            "request_id": f"t{i}",
        }
        for i in range(n)
    ]
    checks = [JsonSchema(SCHEMA), Confidence(0.8, label_field="label")]
    with Cascade(ladder, validators=checks, log=str(log), log_content=content) as cascade:  # type: ignore[arg-type]
        cascade.map_sync(items)


def test_escalated_requests_become_records_of_what_each_model_answered(server: TestServer, tmp_path: Path) -> None:
    log, out = tmp_path / "traffic.jsonl", tmp_path / "mine.jsonl.gz"
    _log_traffic(server, log)
    assert main(["dataset", "--from-log", str(log), "--out", str(out), "--gold-key", "gold"]) == 0
    ds = load_dataset(out)
    hard = {f"t{i}" for i in range(12) if i % 3}
    assert {r.id for r in ds.records} == hard  # the easy ones have no top answer to compare with
    assert [(m.model, m.price_in, m.price_out) for m in ds.models] == [("mini", 0.15, 0.6), ("4o", 2.5, 10.0)]
    rec = ds.records[0]
    assert rec.messages[0]["content"].startswith("hard ticket")
    assert rec.gold == {"label": "refund"}
    mini, top = rec.responses["mini"], rec.responses["4o"]
    assert mini.samples[0].text == '{"label":"billing"}' and mini.samples[0].correct is False
    assert mini.samples[0].confidence == pytest.approx(0.5)
    assert top.samples[0].answer == {"label": "refund"} and top.samples[0].correct is True
    assert (top.tokens_in, top.tokens_out) == (11, 6)
    assert top.cost_usd == pytest.approx((11 * 2.5 + 6 * 10.0) / 1e6)
    assert {r.split for r in ds.records} <= {"train", "test"}


def test_the_split_is_stable_across_runs(server: TestServer, tmp_path: Path) -> None:
    log = tmp_path / "traffic.jsonl"
    _log_traffic(server, log)
    splits = []
    for name in ("a.jsonl", "b.jsonl"):
        assert main(["dataset", "--from-log", str(log), "--out", str(tmp_path / name)]) == 0
        splits.append([(r.id, r.split) for r in load_dataset(tmp_path / name).records])
    assert splits[0] == splits[1]


def test_cascade_eval_reads_the_recorded_traffic(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, out = tmp_path / "traffic.jsonl", tmp_path / "mine.jsonl"
    _log_traffic(server, log, n=30)
    assert main(["dataset", "--from-log", str(log), "--out", str(out), "--gold-key", "gold", "--test-share", "1"]) == 0
    capsys.readouterr()
    assert (
        main(["eval", str(out), "--ladder", "mini,4o", "--validator", "confidence", "--thresholds", "0.8", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 20 and report["accuracy"] == 1.0  # every recorded mini answer was unsure: all go up


def test_a_log_without_content_says_what_is_missing(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "traffic.jsonl"
    _log_traffic(server, log, content="none")
    assert main(["dataset", "--from-log", str(log), "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "nothing to write" in err and "0 records from 12 requests" in err and "log_content='full'" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_unreadable_lines_are_reported_and_the_rest_converted(
    server: TestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "traffic.jsonl"
    _log_traffic(server, log)
    with log.open("a") as fh:
        fh.write("not json\n")
    out = tmp_path / "mine.jsonl.gz"
    assert main(["dataset", "--from-log", str(log), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{log}:" in captured.err and "1 unreadable lines" in captured.out
    with gzip.open(out, "rt") as fh:
        assert len(fh.read().splitlines()) == 8


def test_a_missing_log_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "--from-log", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "cascade dataset: error:" in capsys.readouterr().err
