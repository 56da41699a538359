"""``cascade stats`` on hand-made logs: every figure checked against values computed by hand."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder, acc, err, esc, reask

from cascade._cli import main
from cascade.stats import LogHistogram, parse_time, parse_window

CapSys = pytest.CaptureFixture[str]
START = 1_764_115_200.0  # 2025-11-26T00:00:00Z


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["stats", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)  # stdout is nothing but JSON
    assert isinstance(data, dict)
    return data


def four_requests() -> LogBuilder:
    """R1 small ok; R2 small->medium ok; R3 small(reask, esc)->medium->large, exhausted;
    R4 small error->large ok. Prices per 1M tokens: small 0.1/0.4, medium 1/4, large 10/30."""
    b = LogBuilder(START)
    t = {"tokens_in": 1000, "tokens_out": 500}
    b.req([acc("small", latency_ms=10, **t)], metadata={"tenant": "a"}, latency_ms=100)
    b.req([esc("small", "schema", latency_ms=20, **t), acc("medium", latency_ms=30, **t)],
          metadata={"tenant": "b"}, latency_ms=200)  # fmt: skip
    b.req(
        [
            reask("small", "schema", latency_ms=10, **t),
            esc("small", "schema", tokens_in=1200, tokens_out=500, latency_ms=10),
            esc("medium", "consistency", latency_ms=40, **t),
            esc("large", "schema", latency_ms=100, **t),
        ],
        metadata={"tenant": "a"},
        latency_ms=400,
    )
    b.req([err("small", calls=3, retries=2, latency_ms=50), acc("large", latency_ms=300, **t)], latency_ms=1000)
    return b


def close(a: float | None, b: float, rel: float = 1e-9) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def test_every_figure_of_a_hand_made_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = four_requests().write(tmp_path / "a.jsonl")
    d = run_json(capsys, str(log), "--by", "metadata.tenant", "--by", "model")

    assert d["schema"] == "cascade.stats/1" and d["empty"] is False
    assert d["requests"] == 4 and d["attempts"] == 9 and d["calls"] == 11
    assert d["accepted"] == 3 and d["accepted_rate"] == 0.75
    assert d["accepted_by_rung"] == {"small": 1, "medium": 1, "large": 1}
    assert d["final_failures"] == {
        "count": 1,
        "rate": 0.25,
        "by_outcome": {"exhausted": 1},
        "by_reason": {"schema": 1},
    }
    assert d["escalated_requests"] == {"count": 3, "rate": 0.75}
    assert d["escalations"] == 4  # R2: 1, R3: 2, R4: 1
    assert d["budget_stops"] == {"count": 0, "rate": 0.0}
    assert d["errors"] == {"count": 1, "rate": round(1 / 9, 6), "by_kind": {"rung_fatal": 1}}
    assert d["retries"] == {"count": 2, "rate": round(2 / 11, 6)}

    # cost: R1 3e-4; R2 3e-4 + 3e-3; R3 3e-4 + 3.2e-4 + 3e-3 + 0.025; R4 0 + 0.025
    assert close(d["cost_usd"], 0.05722)
    assert close(d["cost_per_request_usd"], 0.05722 / 4, 1e-6)
    assert close(d["cost_per_accepted_usd"], 0.05722 / 3, 1e-6)
    # baseline: every request once on large with 1000 prompt and 500 output tokens = 0.025 each
    assert close(d["baseline_top_cost_usd"], 0.1)
    assert close(d["savings_usd"], 0.1 - 0.05722)
    assert d["savings_pct"] == 42.78
    assert "estimate" in d["baseline_method"]

    lat = d["latency_ms"]  # requests 100, 200, 400, 1000; nearest rank
    assert lat["count"] == 4 and close(lat["p50"], 200, 0.01) and close(lat["p95"], 1000, 0.01)
    assert close(lat["p99"], 1000, 0.01) and lat["mean"] == 425.0 and lat["max"] == 1000.0
    assert d["latency_relative_error"] == 0.01

    assert list(d["by_rung"]) == ["small", "medium", "large"]
    s, m, lg = d["by_rung"]["small"], d["by_rung"]["medium"], d["by_rung"]["large"]
    assert (s["attempts"], s["reached"], s["accepted"], s["escalated"], s["errors"], s["reasks"]) == (
        5,
        4,
        1,
        2,
        1,
        1,
    )
    assert s["escalation_rate"] == 0.75 and s["accepted_rate"] == 0.25
    assert (s["calls"], s["retries"], s["retry_rate"]) == (7, 2, round(2 / 7, 6))
    assert close(s["cost_usd"], 0.00122) and close(s["cost_per_visit_usd"], 0.00122 / 4)
    assert s["cost_share"] == round(0.00122 / 0.05722, 6)
    assert s["reasons"] == {"schema": 2, "server_error": 1} and s["error_kinds"] == {"rung_fatal": 1}
    assert s["model"] == "small-1" and s["index"] == 0
    assert close(s["latency_ms"]["p50"], 10, 0.01) and close(s["latency_ms"]["p99"], 50, 0.01)  # 10,20,10,10,50
    assert (m["reached"], m["accepted"], m["escalated"], m["escalation_rate"]) == (2, 1, 1, 0.5)
    assert close(m["cost_usd"], 0.006) and m["reasons"] == {"consistency": 1}
    assert (lg["reached"], lg["accepted"], lg["escalated"], lg["escalation_rate"]) == (2, 1, 1, 0.5)
    assert close(lg["cost_usd"], 0.05) and lg["reasons"] == {"schema": 1}
    assert close(lg["latency_ms"]["p50"], 100, 0.01) and close(lg["latency_ms"]["p95"], 300, 0.01)

    assert d["by_reason"] == {
        "schema": {"count": 3, "share": 0.6, "per_request": 0.75, "reasks": 1},
        "consistency": {"count": 1, "share": 0.2, "per_request": 0.25, "reasks": 0},
        "server_error": {"count": 1, "share": 0.2, "per_request": 0.25, "reasks": 0},
    }
    assert set(d["by_model"]) == {"small-1", "medium-1", "large-1"}
    assert d["by_model"]["small-1"]["escalation_rate"] == 0.75

    groups = d["by_metadata"]["groups"]
    assert d["by_metadata"]["key"] == "tenant" and set(groups) == {"a", "b", "(missing)"}
    a = groups["a"]
    assert (a["requests"], a["accepted"], a["final_failures"]["count"]) == (2, 1, 1)
    assert close(a["cost_usd"], 0.0003 + 0.02862) and close(a["baseline_top_cost_usd"], 0.05)
    assert groups["b"]["accepted_by_rung"] == {"medium": 1} and groups["(missing)"]["accepted_by_rung"] == {"large": 1}
    assert d["incomplete_requests"] == 0 and d["bad_lines"] == {"count": 0, "samples": []}
    assert d["time_range"]["first"] > START and d["compare"] is None


def test_bad_lines_are_counted_with_file_and_line_and_the_rest_is_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = run_json(capsys, str(four_requests().write(tmp_path / "good.jsonl")))
    b = four_requests()
    b.events.insert(3, {"event": "attempt", "v": 1, "ts": "yesterday", "request_id": "x", "rung": "small",
                        "outcome": "accepted"})  # fmt: skip
    b.events.insert(5, {"event": "heartbeat", "v": 2, "ts": START})  # a later event kind: ignored, counted
    log = b.write(tmp_path / "bad.jsonl", ["[1, 2]", '{"hello": "world"}', '{"event": "request", "v": 1, "ts'])
    d = run_json(capsys, str(log))
    assert d["bad_lines"]["count"] == 4
    assert [(s["file"], s["line"]) for s in d["bad_lines"]["samples"]] == [
        (str(log), 4), (str(log), 16), (str(log), 17), (str(log), 18),
    ]  # fmt: skip
    assert "'ts'" in d["bad_lines"]["samples"][0]["error"] and "yesterday" in d["bad_lines"]["samples"][0]["error"]
    assert "not valid JSON" in d["bad_lines"]["samples"][3]["error"]
    assert d["other_events"] == 1
    for key in ("requests", "accepted", "cost_usd", "baseline_top_cost_usd", "by_rung", "by_reason"):
        assert d[key] == good[key]

    main(["stats", str(log)])  # the human report names them too, and exits 0
    text = capsys.readouterr().out
    assert f"{log}:18: not valid JSON" in text and "4 bad line(s) skipped" in text


def test_gzip_and_many_files_give_the_same_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = four_requests()
    one = run_json(capsys, str(b.write(tmp_path / "all.jsonl")))
    gz = run_json(capsys, str(b.write(tmp_path / "all.jsonl.gz")))
    half = len(b.events) // 2
    b1, b2 = LogBuilder(), LogBuilder()
    b1.events, b2.events = b.events[:half], b.events[half:]
    split = run_json(capsys, str(b1.write(tmp_path / "r1.jsonl")), str(b2.write(tmp_path / "r2.jsonl.gz")))
    for d in (gz, split):
        for key in (
            "requests",
            "accepted",
            "cost_usd",
            "baseline_top_cost_usd",
            "by_rung",
            "by_reason",
            "latency_ms",
        ):
            assert d[key] == one[key], key
    assert len(split["files"]) == 2


def test_truncated_gzip_is_a_bad_line_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = LogBuilder(START)
    for _ in range(200):
        b.req([acc("small")])
    blob = gzip.compress("\n".join(b.lines()).encode())
    log = tmp_path / "cut.jsonl.gz"
    log.write_bytes(blob[: len(blob) // 2])
    d = run_json(capsys, str(log))
    assert d["bad_lines"]["count"] >= 1 and "gzip" in d["bad_lines"]["samples"][-1]["error"]
    assert 0 < d["requests"] < 200


def test_since_and_until_accept_iso_and_unix_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = LogBuilder(START)
    for i in range(10):
        b.req([acc("small")] if i % 2 else [esc("small", "schema"), acc("medium")], gap=60)
    log = str(b.write(tmp_path / "t.jsonl"))
    # request i's events lie in [START + 60 i, START + 60 i + 1)
    d = run_json(capsys, log, "--since", "2025-11-26T00:02:00Z", "--until", str(START + 300))
    assert d["requests"] == 3 and d["accepted_by_rung"] == {"medium": 2, "small": 1}
    assert d["since"] == START + 120 and d["until"] == START + 300
    d = run_json(capsys, log, "--since", "2025-11-26T00:05:00")  # no zone: UTC
    assert d["requests"] == 5
    assert parse_time("2025-11-26T01:00:00+01:00", "--since") == START


def test_empty_log_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    d = run_json(capsys, str(log))
    assert d["empty"] is True and d["requests"] == 0 and d["cost_per_request_usd"] is None
    assert d["savings_pct"] is None and d["by_rung"] == {}
    assert main(["stats", str(log)]) == 0
    assert "No cascade events in" in capsys.readouterr().out


def test_missing_file_and_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", str(tmp_path / "nope.jsonl")]) == 2
    assert "log file not found" in capsys.readouterr().err
    log = four_requests().write(tmp_path / "a.jsonl")
    assert main(["stats", str(log), "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["stats", str(log), "--compare", "5x"]) == 2
    assert "--compare" in capsys.readouterr().err
    assert main(["stats", str(log), "--by", "tenant"]) == 2
    assert "--by" in capsys.readouterr().err


def test_plain_text_report_has_counts_and_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = four_requests().write(tmp_path / "a.jsonl")
    assert main(["stats", str(log), "--plain", "--by", "model"]) == 0
    text = capsys.readouterr().out
    assert "3 (75.0%)" in text  # accepted
    assert "small-1" in text and "By model" in text and "estimate" in text
    assert "42.8%" in text  # savings


def test_incomplete_requests_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = four_requests()
    b.req([esc("small", "schema")], emit_request=False)  # crashed before its request event
    d = run_json(capsys, str(b.write(tmp_path / "a.jsonl")))
    assert d["incomplete_requests"] == 1 and d["requests"] == 4 and d["by_rung"]["small"]["reached"] == 5


def test_histogram_quantiles_are_within_the_stated_error() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1.5) for _ in range(20_000)] + [0.0] * 50
    h = LogHistogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
        got = h.quantile(q)
        assert got is not None and abs(got - exact) <= 0.01 * exact + 1e-12, (q, got, exact)
    assert h.quantile(0.001) == 0.0 and h.buckets < 1200


def test_window_parsing() -> None:
    assert parse_window("1h").size == 3600 and parse_window("30m").size == 1800
    assert parse_window("1d").size == 86400 and parse_window("1000r").kind == "requests"
    for bad in ("", "h", "-1h", "1.5r", "10y"):
        with pytest.raises(ValueError, match="--compare"):
            parse_window(bad)


def test_in_flight_state_is_capped(tmp_path: Path, capsys: CapSys, monkeypatch: pytest.MonkeyPatch) -> None:
    from cascade.stats import _aggregate

    monkeypatch.setattr(_aggregate, "MAX_IN_FLIGHT", 2)
    b = LogBuilder(START)
    for _ in range(5):  # five crashed requests: attempts only
        b.req([esc("small", "schema")], emit_request=False)
    b.req([acc("small")])
    d = run_json(capsys, str(b.write(tmp_path / "a.jsonl")))
    assert d["incomplete_requests"] == 5 and d["requests"] == 1 and d["by_rung"]["small"]["reached"] == 6


def test_plain_text_when_rich_is_missing(tmp_path: Path, capsys: CapSys, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["stats", str(four_requests().write(tmp_path / "a.jsonl"))]) == 0
    text = capsys.readouterr().out
    assert "Overview" in text and "----" in text and "┃" not in text


def test_nan_and_negative_numbers_are_bad_lines(tmp_path: Path, capsys: CapSys) -> None:
    b = four_requests()
    b.events[0]["cost_usd"] = -1
    log = b.write(tmp_path / "a.jsonl", ['{"event": "request", "v": 1, "ts": NaN, "request_id": "z"}'])
    d = run_json(capsys, str(log))
    errors = [s["error"] for s in d["bad_lines"]["samples"]]
    assert len(errors) == 2 and "'cost_usd'" in errors[0] and "-1" in errors[0] and "NaN" in errors[1]
    assert d["requests"] == 4
