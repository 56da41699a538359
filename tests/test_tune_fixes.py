"""What a user hit running `cascade eval` / `tune` on unusual data (issue 17, point 6): each case fails
with one clear line, or warns, instead of a traceback or a silently useless fit."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import PRICES, entry, one_line_error, record, tiny, write

from cascade._cli import main


def _three(rid: str, cheap: Any, conf: float, split: str, top: Any = "A") -> dict[str, Any]:
    return record(
        rid,
        "A",
        {
            "cheap": entry([cheap], "A", [conf], price=PRICES["cheap"]),
            "mid": entry([cheap], "A", [0.5], price=PRICES["mid"]),
            "top": entry([top], "A", [0.9], price=PRICES["top"]),
        },
        split=split,
    )


@pytest.mark.parametrize("how", [["--fit", "train"], ["--thresholds", "0.5"]])
def test_eval_on_an_empty_split_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], how: list[str]) -> None:
    rng = random.Random(1)
    recs = [_three(f"t{i}", "A" if rng.random() > 0.3 else "B", rng.random(), "train") for i in range(30)]
    path = str(write(tmp_path / "trainonly.jsonl.gz", recs))
    assert main(["eval", path, "--ladder", "cheap,mid,top", "--validator", "confidence", *how]) == 2
    one_line_error(capsys, "--split test", "no test records", "--split train")


def test_all_null_answers_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = [_three(f"n{i}", None, 0.5, "train" if i < 100 else "test", top=None) for i in range(200)]
    path = str(write(tmp_path / "nulls.jsonl.gz", recs))
    for validator in ("agreement", "schema"):
        assert main(["tune", path, "--ladder", "cheap,mid,top", "--validator", validator, "--out", "-"]) == 2
        one_line_error(capsys, "every recorded answer", "'cheap'", "null")
    assert main(["eval", path, "--ladder", "cheap,mid,top", "--validator", "confidence", "--thresholds", "0.95"]) == 2
    one_line_error(capsys, "every recorded answer")


def test_agreement_on_two_models_is_refused_with_a_hint_that_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write(tmp_path / "tiny.jsonl.gz", tiny()))
    assert main(["eval", path, "--ladder", "cheap,top", "--validator", "agreement", "--thresholds", "0.5"]) == 2
    err = one_line_error(capsys, "--validator agreement", "never accept", "try confidence")
    assert "agreement)" not in err.split("try")[-1]


def test_refusal_hints_name_only_signals_that_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no confidence recorded, one sample, two models: no other signal works either; the hint must not
    # suggest confidence right after refusing it, nor agreement on two rungs
    recs = [record(f"q{i}", "A", {"cheap": entry(["A"], "A"), "top": entry(["A"], "A")}) for i in range(4)]
    path = str(write(tmp_path / "bare.jsonl.gz", recs))
    assert main(["eval", path, "--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "0.5"]) == 2
    err = one_line_error(capsys, "--validator confidence", "no signal")
    assert "try" not in err
    assert main(["eval", path, "--ladder", "cheap,top", "--validator", "consistency", "--thresholds", "0.5"]) == 2
    err = one_line_error(capsys, "--validator consistency")
    assert "try confidence" not in err and "agreement" not in err


def test_duplicated_rung_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "tiny.jsonl.gz", tiny()))
    assert main(["tune", path, "--ladder", "cheap,cheap,top", "--validator", "confidence", "--out", "-"]) == 2
    one_line_error(capsys, "--ladder", "'cheap' appears twice")


def test_reversed_ladder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "tiny.jsonl.gz", tiny()))
    assert main(["eval", path, "--ladder", "top,cheap", "--validator", "confidence", "--thresholds", "0.5"]) == 2
    one_line_error(capsys, "--ladder is not cheapest first: 'top'", "reorder")
    assert main(["eval", path, "--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "0.5"]) == 0
    assert capsys.readouterr().err == ""


def test_validator_defaults_to_what_the_data_carries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "tiny.jsonl.gz", tiny()))  # confidence recorded
    assert main(["eval", path, "--ladder", "cheap,mid,top", "--thresholds", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["validator"] == "confidence"


def test_a_separate_confidence_call_is_charged_only_where_a_check_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recs = tiny()
    for r in recs:
        for e in r["responses"].values():
            e["confidence_cost_usd"] = e["cost_usd"] / 2  # half of the recorded cost was the "is this right?" call
    path = str(write(tmp_path / "paid.jsonl.gz", recs))
    assert (
        main(["eval", path, "--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "0.5", "--json"]) == 0
    )
    rep = json.loads(capsys.readouterr().out)
    base = {m: tiny()[0]["responses"][m]["cost_usd"] for m in ("cheap", "top")}
    singles = {s["model"]: s["cost_per_query"] for s in rep["single_models"]}
    assert singles["top"] == pytest.approx(base["top"] / 2)  # a model alone never pays the confidence call
    assert singles["cheap"] == pytest.approx(base["cheap"] / 2)
    # cheap accepts q0, q1 (confidence >= 0.5) and escalates q2, q3: it always pays its check's call,
    # the top rung (no check) pays only its answer
    want = (4 * base["cheap"] + 2 * base["top"] / 2) / 4
    assert rep["cost_per_query"] == pytest.approx(want)
    assert rep["engine_equals_simulation"]
    assert main(["eval", path, "--ladder", "mid,top", "--validator", "agreement", "--thresholds", "0.5"]) == 2
    capsys.readouterr()
    assert (
        main(["eval", path, "--ladder", "cheap,mid,top", "--validator", "agreement", "--thresholds", "0.5", "--json"])
        == 0
    )
    rep = json.loads(capsys.readouterr().out)  # agreement makes no confidence call: nobody pays it
    assert rep["cost_per_query"] <= sum(base.values()) / 2 + tiny()[0]["responses"]["mid"]["cost_usd"] / 2 + 1e-12


def test_entry_confidence_cost_must_be_below_its_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = tiny()
    recs[0]["responses"]["cheap"]["confidence_cost_usd"] = recs[0]["responses"]["cheap"]["cost_usd"]
    path = str(write(tmp_path / "bad.jsonl.gz", recs))
    assert main(["eval", path, "--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "0.5"]) == 2
    one_line_error(capsys, "confidence_cost_usd", "below cost_usd")


def test_a_best_single_policy_is_certified_written_and_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(5)
    recs = [_three(f"q{i}", "A" if rng.random() < 0.5 else "B", rng.random(), "train" if i < 60 else "test")
            for i in range(120)]  # fmt: skip
    path = str(write(tmp_path / "noise.jsonl.gz", recs))
    out = str(tmp_path / "p.json")
    assert main(["tune", path, "--out", out]) == 0  # the default never-lose fit: no signal, the best model alone
    text = capsys.readouterr().out
    assert "no cascade:" in text and "certified" in text and "NOT certified" not in text
    assert json.loads(Path(out).read_text())["guarantee"]["certified"] is True
    assert main(["eval", path, "--policy", out]) == 0
    assert main(["tune", path]) == 0 and "nothing written" in capsys.readouterr().out


def test_the_benchmark_runs_on_a_train_only_dataset_and_reads_the_signal_from_the_data(tmp_path: Path) -> None:
    """benchmarks/replay.py raised KeyError 'test' on a dataset without a test split, and picked the
    validator by the dataset's name: here a dataset called "mmlu" that records no confidence."""
    import subprocess
    import sys

    rng = random.Random(7)
    recs = []
    for i in range(40):
        a = "A" if rng.random() < 0.6 else "B"
        recs.append(
            record(
                f"q{i}",
                "A",
                {
                    "cheap": entry([a], "A"),
                    "mid": entry([a], "A", price=PRICES["mid"]),
                    "top": entry(["A"], "A", price=PRICES["top"]),
                },
                split="train",
            )
        )
    write(tmp_path / "mmlu.jsonl.gz", recs)
    (tmp_path / "catalog.json").write_text(json.dumps({"format_version": 1, "datasets": {"mmlu": {}}}))
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "replay.py"
    env = {**__import__("os").environ, "CASCADE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(bench), "mmlu"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| mmlu"))
    assert "| - |" in row  # no test split: the train-only columns are empty, the cross-fitted point is there
