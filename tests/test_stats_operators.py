"""``cascade stats`` for an operator: reasons per rung, ``--by`` slices, drift explained, validator scores,
80-column tables, text from the log escaped, the time axis, exports. Most read the realistic log of
``logbuilder.realistic_log`` (2,000 requests, 3 rungs, ~60% accepted by the cheapest, faults, two hours,
``task=chat`` drifting in the second hour)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder, acc, esc, realistic_log

from cascade._cli import main
from cascade.stats._render import clean, pct
from cascade.stats._scores import ScoreHistogram, ks_test
from cascade.stats._timeline import wilson

START = 1_764_115_200.0
HOUR = ("--compare", "1h", "--until", str(START + 7200))
CapSys = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return realistic_log().write(tmp_path_factory.mktemp("real") / "real.jsonl")


@pytest.fixture(scope="module")
def real_events(real_log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in real_log.read_text().splitlines()]


def stats_json(capsys: CapSys, *args: str) -> dict[str, Any]:
    assert main(["stats", "--json", *args]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


def stats_text(capsys: CapSys, *args: str) -> str:
    assert main(["stats", *args]) == 0
    return capsys.readouterr().out


def test_the_realistic_log_is_what_it_claims(real_events: list[dict[str, Any]]) -> None:
    requests = [e for e in real_events if e["event"] == "request"]
    attempts = [e for e in real_events if e["event"] == "attempt"]
    assert len(requests) == 2000 and {a["rung"] for a in attempts} == {"small", "medium", "large"}
    small = [a for a in attempts if a["rung"] == "small"]
    assert 0.55 <= sum(a["outcome"] == "accepted" for a in small) / len(small) <= 0.65
    statuses = {a["error"]["status"] for a in attempts if a["error"]}
    assert {429, 500, None} <= statuses  # rate limits, server errors, timeouts
    span = requests[-1]["ts"] - requests[0]["ts"]
    assert 7000 < span <= 7200


def test_reasons_are_per_rung_in_the_tables(capsys: CapSys, real_log: Path) -> None:
    d = stats_json(capsys, str(real_log))
    text = stats_text(capsys, str(real_log), "--plain")
    table = text.split("Escalation reasons per rung")[1].split("\n\n")[0]
    rows = {tuple(line.split()[:3]) for line in table.splitlines()}
    for rung in ("small", "medium"):
        for reason, n in d["by_rung"][rung]["reasons"].items():
            assert (rung, reason, f"{n:,}") in rows, (rung, reason, n)
    small, medium = d["by_rung"]["small"]["reasons"], d["by_rung"]["medium"]["reasons"]
    assert small["schema_invalid"] != d["by_reason"]["schema_invalid"]["count"]  # pooled is not per rung
    assert (
        small["schema_invalid"] + medium["schema_invalid"] + d["by_rung"]["large"]["reasons"].get("schema_invalid", 0)
        == (d["by_reason"]["schema_invalid"]["count"])
    )


def test_by_takes_several_keys_and_rung_and_reason_change_the_output(capsys: CapSys, real_log: Path) -> None:
    log = str(real_log)
    base = stats_text(capsys, log, "--plain")
    by_rung = stats_text(capsys, log, "--plain", "--by", "rung")
    by_reason = stats_text(capsys, log, "--plain", "--by", "reason")
    assert len({base, by_rung, by_reason}) == 3
    assert "By rung (visits)" in by_rung and "By reason (visits failing" in by_reason

    d = stats_json(capsys, log, "--by", "metadata.task,rung")
    assert d["by"] == ["metadata.task", "rung"] and d["by_metadata"]["keys"] == ["task"]
    rows = d["slices"]["rows"]
    assert {tuple(r["key"]) for r in rows} == {("metadata.task", "rung")}
    assert len(rows) == 9  # 3 tasks x 3 rungs
    for rung, g in d["by_rung"].items():  # the slices partition each rung's visits
        mine = [r for r in rows if r["key"]["rung"] == rung]
        assert sum(r["visits"] for r in mine) == g["reached"]
        assert sum(r["escalated"] for r in mine) == g["escalated"] + g["errors"]
        assert math.isclose(sum(r["cost_usd"] for r in mine), g["cost_usd"], rel_tol=1e-9)
    chat_small = next(r for r in rows if r["key"] == {"metadata.task": "chat", "rung": "small"})
    assert chat_small["visits"] == d["by_metadata"]["groups"]["chat"]["requests"]  # every request starts at small

    repeated = stats_json(capsys, log, "--by", "metadata.task", "--by", "rung")
    assert repeated["slices"] == d["slices"]
    two_meta = stats_json(capsys, log, "--by", "metadata.task,metadata.tenant")
    groups = two_meta["by_metadata"]["groups"]
    assert (
        two_meta["slices"] is None
        and len(groups) == 9
        and groups["chat / t1"]["values"]
        == {
            "task": "chat",
            "tenant": "t1",
        }
    )
    assert sum(g["requests"] for g in groups.values()) == 2000

    reasons = stats_json(capsys, log, "--by", "rung,reason")["slices"]["rows"]
    for r in reasons:
        assert r["escalated"] == d["by_rung"][r["key"]["rung"]]["reasons"][r["key"]["reason"]]
        assert r["visits"] == d["by_rung"][r["key"]["rung"]]["reached"]
    assert main(["stats", log, "--by", "rung,tenant"]) == 2
    assert "--by" in capsys.readouterr().err


def test_drift_says_where_with_the_test_behind_it(capsys: CapSys, real_log: Path) -> None:
    d = stats_json(capsys, str(real_log), *HOUR, "--by", "metadata.task")
    explanations = {e["scope"]: e for e in d["compare"]["explanations"]}
    small = explanations["small"]
    assert small["flagged"] and small["p_value"] < 1e-4 and small["change"] > 0.1
    top = small["slices"][0]
    assert top["label"] == "task=chat" and top["significant"] and top["p_value"] < 1e-4
    assert top["current"] - top["previous"] > 0.3
    assert all(not s["significant"] for s in small["slices"][1:])  # the other tasks are flat
    assert {s["note"] for s in small["slices"][1:]} == {"flat"}
    # the contributions split the rung's change exactly
    assert math.isclose(sum(s["contribution"] for s in small["slices"]), small["change"], abs_tol=1e-5)
    assert top["contribution"] / small["change"] > 0.8
    for s in small["slices"]:  # each contribution = rate effect + traffic-mix effect, exactly
        assert math.isclose(s["rate_effect"] + s["mix_effect"], s["contribution"], abs_tol=2e-6)
    assert top["rate_effect"] > 0.15 and abs(top["mix_effect"]) < 0.03  # chat failed more; its traffic held
    assert "task=chat" in small["summary"] and "p<0.0001" in small["summary"] and "flat" in small["summary"]
    reasons = {s["key"]["reason"]: s for s in small["reasons"]}
    assert reasons["schema_invalid"]["significant"] and reasons["schema_invalid"]["contribution"] > 0
    assert not reasons["rate_limited"]["significant"]
    assert explanations["(all)"]["slices"][0]["label"] == "task=chat"
    assert not explanations["large"]["flagged"]
    text = stats_text(capsys, str(real_log), *HOUR, "--by", "metadata.task", "--plain")
    assert "Drift: where" in text and "Drift: small escalation" in text.replace("\n  ", " ")


def test_steady_log_explains_nothing(tmp_path: Path, capsys: CapSys) -> None:
    log = realistic_log(drift_task="none").write(tmp_path / "steady.jsonl")
    d = stats_json(capsys, str(log), *HOUR, "--by", "metadata.task")
    assert not d["compare"]["drifted"]
    assert not any(e["flagged"] for e in d["compare"]["explanations"])


def test_validator_scores_per_rung_and_their_drift(capsys: CapSys, real_log: Path, real_events: list[Any]) -> None:
    d = stats_json(capsys, str(real_log), *HOUR)
    for rung in ("small", "medium", "large"):
        scores = sorted(
            v["score"]
            for e in real_events
            if e["event"] == "attempt" and e["rung"] == rung
            for v in e["verdicts"]
            if v["validator"] == "confidence"
        )
        s = d["by_rung"][rung]["scores"]["confidence"]
        assert s["count"] == len(scores)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            exact = scores[max(1, math.ceil(q * len(scores))) - 1]
            assert abs(s[f"p{round(q * 100)}"] - exact) <= 0.0025 + 1e-9, (rung, q)
        assert "schema" not in d["by_rung"][rung]["scores"]  # a verdict without a score is not a score
    score = {f["rung"]: f for f in d["compare"]["findings"] if f["metric"] == "score"}
    assert score["small"]["flagged"] and score["small"]["validator"] == "confidence"
    assert score["small"]["current"] < score["small"]["previous"]
    assert not score["medium"]["flagged"]
    text = stats_text(capsys, str(real_log), "--plain")
    assert "Validator scores per rung" in text


def test_ks_test_on_known_distributions() -> None:
    a, b, c = ScoreHistogram(), ScoreHistogram(), ScoreHistogram()
    for i in range(1000):
        a.add(i / 1000)
        b.add(((i * 7919) % 1000) / 1000)  # the same values, another order
        c.add(min(0.999, i / 1000 + 0.2))
    assert ks_test(a, b) == (0.0, 1.0)
    d, p = ks_test(a, c)
    assert abs(d - 0.2) < 0.01 and p < 1e-10


def test_tables_fit_80_columns(capsys: CapSys, real_log: Path, tmp_path: Path) -> None:
    b = LogBuilder(START)
    for i in range(30):
        b.req([esc("small", "x" * 60), acc("medium")], metadata={"customer": "a-very-long-customer-name-" * 4 + str(i)})
    wide = b.write(tmp_path / "wide.jsonl")
    for args in (
        (str(real_log), *HOUR, "--by", "metadata.task,rung", "--by", "model"),
        (str(wide), "--by", "metadata.customer,reason"),
    ):
        for style in ((), ("--plain",)):
            text = stats_text(capsys, *args, *style)
            too_wide = [line for line in text.splitlines() if len(line) > 80]
            assert not too_wide, too_wide[:3]
    assert "…" in text  # long values are cut, not dropped silently: the ellipsis says so


def test_a_partial_share_never_prints_as_100_or_0_percent(tmp_path: Path, capsys: CapSys) -> None:
    b = LogBuilder(START)
    for _ in range(1999):
        b.req([acc("small")])
    b.req([esc("small", "schema"), esc("medium", "schema"), esc("large", "schema")])
    text = stats_text(capsys, str(b.write(tmp_path / "a.jsonl")), "--plain")
    assert "1,999 (>99.9%)" in text and "1 (0.1%)" in text and "100.0%" not in text.split("By rung")[0]
    assert (pct(1.0), pct(0.0), pct(0.9995), pct(0.0004), pct(0.5)) == ("100.0%", "0.0%", ">99.9%", "<0.1%", "50.0%")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--alpha", "2"), ("--alpha", "1"), ("--alpha", "0"), ("--drift-tvd", "1.5"), ("--drift-score", "-1")],
)
def test_out_of_range_levels_are_refused(tmp_path: Path, capsys: CapSys, flag: str, value: str) -> None:
    log = LogBuilder(START).write(tmp_path / "a.jsonl")
    assert main(["stats", str(log), "--compare", "1h", flag, value]) == 2
    err = capsys.readouterr().err
    assert flag in err and str(float(value)) in err and len(err.strip().splitlines()) == 1


def _hostile_log(tmp_path: Path) -> Path:
    b = LogBuilder(START)
    for tenant in ("[/oops]", "[bold red]x[/]", "\x1b[31mred\x1b[0m\x1b]0;owned\x07", "\u202eevil"):
        for _ in range(3):
            b.req([esc("small", "reason[/i]"), acc("medium")], metadata={"tenant": tenant})
    return b.write(tmp_path / "hostile.jsonl")


@pytest.mark.parametrize("plain", [False, True])
def test_text_from_the_log_is_never_markup_or_terminal_control(tmp_path: Path, capsys: CapSys, plain: bool) -> None:
    log = _hostile_log(tmp_path)
    text = stats_text(capsys, str(log), "--by", "metadata.tenant", *(["--plain"] if plain else []))
    assert "[/oops]" in text and "[bold red]x[/]" in text and "reason[/i]" in text  # shown as written
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[31mred" in text and "\\u202eevil" in text  # visible, escaped
    assert clean("tab\there\nnew") == "tab\\x09here\\x0anew"


def test_html_escapes_the_log_too(tmp_path: Path, capsys: CapSys) -> None:
    b = LogBuilder(START)
    b.req([esc("small", "<script>alert(1)</script>"), acc("medium")], metadata={"t": "<img src=x onerror=alert(1)>"})
    out = tmp_path / "r.html"
    assert main(["stats", str(b.write(tmp_path / "a.jsonl")), "--html", str(out), "--by", "metadata.t"]) == 0
    page = out.read_text()
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page


def test_a_file_that_is_not_a_log_exits_non_zero(tmp_path: Path, capsys: CapSys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text('shopping list\n- eggs\n{"not": "an event"}\n')
    assert main(["stats", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "no line of" in err and "notes.txt" in err and "3 unreadable line(s)" in err
    assert main(["stats", "--json", str(notes)]) == 2
    capsys.readouterr()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["stats", str(empty)]) == 0  # an empty log is a log with nothing in it yet
    capsys.readouterr()
    good = LogBuilder(START)
    good.req([acc("small")])
    mixed = good.write(tmp_path / "mixed.jsonl", ["garbage"])
    assert main(["stats", str(mixed)]) == 0  # one valid event: a log with a bad line, reported


def test_timeline_buckets_bands_and_pauses(tmp_path: Path, capsys: CapSys, real_log: Path) -> None:
    d = stats_json(capsys, str(real_log), "--html", str(tmp_path / "p.html"))
    tl = d["timeline"]
    assert tl["bucket_s"] == 300 and tl["segments"] == [[START, START + 7200]] and tl["unit"] == "visit"
    for s in tl["series"]:
        assert sum(p["n"] for p in s["points"]) == d["by_rung"][s["key"]["rung"]]["reached"]
        for p in s["points"]:
            assert p["lo"] <= p["rate"] <= p["hi"] and (p["lo"], p["hi"]) == tuple(
                round(v, 6) for v in wilson(p["x"], p["n"])
            )

    # two one-hour runs a day apart: two segments, no line across the pause, buckets sized to the runs
    first = realistic_log(n=600, hours=1)
    second = realistic_log(n=600, hours=1, start=START + 86400, seed=3)
    first.events += second.events
    two = first.write(tmp_path / "two.jsonl")
    tl = stats_json(capsys, str(two), "--html", str(tmp_path / "p2.html"))["timeline"]
    assert len(tl["segments"]) == 2 and tl["segments"][1][0] >= START + 86400 - tl["bucket_s"]
    assert tl["bucket_s"] <= 300  # sized to two active hours, not to the 25-hour span
    from cascade.stats._timeline import runs

    for s in tl["series"]:
        assert len(runs(s["points"], tl["bucket_s"])) >= 2

    burst = LogBuilder(START)
    for i in range(600):
        burst.req([acc("small")] if i % 3 else [esc("small", "schema"), acc("medium")], gap=0.1)
    tl = stats_json(capsys, str(burst.write(tmp_path / "burst.jsonl")), "--html", str(tmp_path / "p3.html"))["timeline"]
    assert tl["bucket_s"] <= 10 and len(tl["series"][0]["points"]) >= 6


def test_by_and_compare_change_the_timeline_and_the_plot(tmp_path: Path, capsys: CapSys, real_log: Path) -> None:
    pngs = [tmp_path / f"{i}.png" for i in range(3)]
    default = stats_json(capsys, str(real_log), "--plot", str(pngs[0]))["timeline"]
    with_by = stats_json(capsys, str(real_log), "--plot", str(pngs[1]), "--by", "metadata.task")
    assert with_by["timeline"] == default  # the per-rung chart stays; the slices get their own
    by_task = with_by["timeline_by"]
    stats_json(capsys, str(real_log), "--plot", str(pngs[2]), *HOUR)
    assert [s["label"] for s in default["series"]] == ["rung=small", "rung=medium", "rung=large"]
    assert by_task["unit"] == "request" and {s["label"] for s in by_task["series"]} == {
        "task=chat",
        "task=extract",
        "task=classify",
    }
    chat = next(s for s in by_task["series"] if s["label"] == "task=chat")
    late = [p["rate"] for p in chat["points"] if p["t"] >= START + 3600]
    early = [p["rate"] for p in chat["points"] if p["t"] < START + 3600]
    assert sum(late) / len(late) > sum(early) / len(early) + 0.3  # the drift, visible per task
    blobs = [p.read_bytes() for p in pngs]
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in blobs) and len(set(blobs)) == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_one_row_per_attempt_and_per_request(tmp_path: Path, capsys: CapSys, real_log: Path, fmt: str) -> None:
    b = LogBuilder(START)
    b.req([acc("small")], metadata={"task": "a"})
    b.req([esc("small", "schema"), acc("medium")], metadata={"task": "b", "late_key": "only here"})
    small = b.write(tmp_path / "small.jsonl")
    for log in (small, real_log):
        d = stats_json(capsys, str(log))
        out = tmp_path / f"{log.stem}.{fmt}"
        assert main(["stats", str(log), "--export", fmt, str(out)]) == 0
        assert f"rows exported to {out}" in capsys.readouterr().out
        num: Callable[[Any], float]
        if fmt == "csv":
            with out.open(newline="") as f:
                rows = list(csv.DictReader(f))
            num = float
        else:
            pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the [export] extra) is not installed")
            rows = pq.read_table(out).to_pylist()

            def num(v: Any) -> float:
                return float(v)

        attempts = [r for r in rows if r["event"] == "attempt"]
        requests = [r for r in rows if r["event"] == "request"]
        assert len(attempts) == d["attempts"] and len(requests) == d["requests"]
        assert math.isclose(sum(num(r["cost_usd"]) for r in requests), d["cost_usd"], rel_tol=1e-9)
        for rung, g in d["by_rung"].items():
            assert math.isclose(
                sum(num(r["cost_usd"]) for r in attempts if r["rung"] == rung), g["cost_usd"], rel_tol=1e-9
            )
    assert "meta.late_key" in rows[0] or log != small
    assert {"meta.task", "meta.tenant", "score.confidence", "error_status"} <= set(rows[0])
    assert not (tmp_path / f"real.{fmt}.partial").exists()


def test_export_refuses_an_unknown_format(tmp_path: Path, capsys: CapSys) -> None:
    log = LogBuilder(START).write(tmp_path / "a.jsonl")
    assert main(["stats", str(log), "--export", "xlsx", str(tmp_path / "o.xlsx")]) == 2
    assert "--export" in capsys.readouterr().err and not (tmp_path / "o.xlsx").exists()


@pytest.mark.parametrize("flag", ["--html", "--plot"])
def test_an_unwritable_output_is_one_line_naming_it(tmp_path: Path, capsys: CapSys, flag: str) -> None:
    b = LogBuilder(START)
    b.req([acc("small")])
    target = str(tmp_path / "no" / "such" / "dir" / "out")
    assert main(["stats", str(b.write(tmp_path / "a.jsonl")), flag, target]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and target in err and "Traceback" not in err


def test_reason_series_count_each_rungs_reasons_out_of_its_visits(
    tmp_path: Path, capsys: CapSys, real_log: Path
) -> None:
    d = stats_json(capsys, str(real_log), "--by", "rung,reason", "--html", str(tmp_path / "r.html"))
    series = d["timeline_by"]["series"]
    assert series[0]["label"] == "rung=small reason=low_confidence"  # the busiest rung's commonest reason first
    for s in series:
        rung, reason = s["key"]["rung"], s["key"]["reason"]
        assert s["n"] == d["by_rung"][rung]["reached"]
        assert sum(p["x"] for p in s["points"]) == d["by_rung"][rung]["reasons"][reason]


@pytest.mark.parametrize("requests", [0, 1])
def test_html_and_plot_of_an_empty_or_one_request_log(tmp_path: Path, capsys: CapSys, requests: int) -> None:
    b = LogBuilder(START)
    for _ in range(requests):
        b.req([esc("small", "x"), acc("medium")])
    log = b.write(tmp_path / "a.jsonl") if requests else tmp_path / "a.jsonl"
    if not requests:
        log.write_text("")
    page, png = tmp_path / "r.html", tmp_path / "r.png"
    args = [str(log), "--html", str(page), "--plot", str(png), "--compare", "1h", "--by", "metadata.task,reason"]
    assert main(["stats", *args]) == 0
    capsys.readouterr()
    assert page.read_text().rstrip().endswith("</html>") and png.read_bytes()[:4] == b"\x89PNG"


def test_an_error_naming_a_hostile_file_name_is_escaped(tmp_path: Path, capsys: CapSys) -> None:
    name = tmp_path / "log\x1b]0;owned\x07.jsonl"
    name.write_text("not json\n")
    assert main(["stats", str(name)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\\x1b]0;owned\\x07" in err
