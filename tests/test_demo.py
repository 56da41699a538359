"""The demo: its data, scoring and argument checks, and (marked ``local_models``) a short real run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cascade._cli import main as cli_main
from cascade.demo import INVOICE_TASK, LABELS, TICKET_TASK, Invoice, load_items
from cascade.local import LocalLadderUnavailable, check_available


def test_ticket_data_is_labelled_and_balanced() -> None:
    items = load_items(TICKET_TASK)
    assert len(items) >= 40
    assert len({i["id"] for i in items}) == len(items)
    counts = Counter(i["gold"] for i in items)
    assert set(counts) == set(LABELS)
    assert max(counts.values()) - min(counts.values()) <= 2


def test_invoice_gold_fits_the_schema() -> None:
    items = load_items(INVOICE_TASK)
    assert len(items) >= 20
    for item in items:
        invoice = Invoice.model_validate(item["gold"])
        assert invoice.vendor.casefold() in item["text"].casefold()
        assert invoice.invoice_number in item["text"]
        assert INVOICE_TASK.score(invoice, item["gold"])


def test_scoring_rejects_each_wrong_field() -> None:
    gold = load_items(INVOICE_TASK)[0]["gold"]
    assert INVOICE_TASK.score(dict(gold), gold)
    for field, wrong in [("vendor", "Other Ltd"), ("invoice_number", "X-1"), ("total", gold["total"] + 0.01),
                         ("currency", "XXX"), ("due_date", "2000-01-01")]:  # fmt: skip
        assert not INVOICE_TASK.score({**gold, field: wrong}, gold), field
    assert not INVOICE_TASK.score(None, gold)
    assert TICKET_TASK.score({"label": "refund"}, "refund")
    assert not TICKET_TASK.score({"label": "billing"}, "refund")
    assert not TICKET_TASK.score("refund", "refund")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks", "poems"], "--tasks must name some of"),
        (["--rungs", "small,huge"], "--rungs must be distinct names"),
        (["--ticket-threshold", "1.5"], "--ticket-threshold must be in [0, 1], got 1.5"),
        (["--limit", "0"], "--limit must be >= 1, got 0"),
        (["--policies", "/nonexistent"], "--policies: policy file '/nonexistent/policy-tickets.json'"),
    ],
)
def test_bad_demo_arguments_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["demo", *argv])
    assert message in str(info.value)


def _unavailable() -> str:
    try:
        check_available()
    except LocalLadderUnavailable as e:
        return str(e)
    return ""


_why = _unavailable()


@pytest.mark.skipif(not _why, reason="the local ladder is installed: this checks the message when it is not")
def test_demo_without_the_ladder_says_what_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo", "--limit", "1", "--log", str(tmp_path / "log.jsonl")]) == 2
    assert "make local" in capsys.readouterr().err


@pytest.mark.local_models
@pytest.mark.skipif(bool(_why), reason=_why or "available")
def test_demo_runs_for_real_and_writes_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "demo.jsonl"
    assert cli_main(["demo", "--limit", "2", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "== tickets: 2 items" in out and "== invoices: 2 items" in out and str(log) in out
    assert "large alone" in out
    summary = out.split("the escalation log, summarised", 1)[1]  # ends with `cascade stats` on the log
    assert "requests" in summary and "tickets" in summary and "invoices" in summary
    events = [json.loads(line) for line in log.read_text().splitlines()]
    requests = [e for e in events if e["event"] == "request"]
    assert len(requests) == 4  # the cascade's requests; the top-rung-alone baseline is not logged
    assert {e["metadata"]["task"] for e in requests} == {"tickets", "invoices"}
    attempts = [e for e in events if e["event"] == "attempt"]
    assert attempts and all(e["rung"] in ("small", "medium", "large") for e in attempts)
    assert all(e["answered_by"] in ("small", "medium", "large") for e in requests)


@pytest.mark.local_models
@pytest.mark.skipif(bool(_why), reason=_why or "available")
def test_demo_stops_naming_the_rung_whose_server_was_killed(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from cascade._cli import main; raise SystemExit(main())", "demo", "--tasks",
           "tickets", "--rungs", "medium,large", "--ticket-threshold", "0.5", "--limit", "20",
           "--log", str(tmp_path / "log.jsonl")]  # fmt: skip
    demo = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    pids: dict[str, int] = {}
    for line in demo.stdout:
        if "local ladder up" in line:
            pids = {name: int(pid) for name, pid in re.findall(r"(\w+)=\S+ \(pid (\d+)\)", line)}
            break
    assert set(pids) == {"medium", "large"}
    os.kill(pids["medium"], signal.SIGKILL)
    out, err = demo.communicate(timeout=180)
    assert demo.returncode == 2, (out, err)
    assert "rung 'medium'" in err and "exited while serving (killed by signal 9 (SIGKILL))" in err
    log = re.search(r"Its log is kept at (\S+);", err)
    assert log is not None and Path(log.group(1)).is_file()
    assert "== tickets" not in out  # no report of a dead ladder
    for pid in pids.values():  # the surviving server was stopped too
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
