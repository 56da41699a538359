"""Bad input to ``cascade eval`` / ``cascade tune``: exit code 2 and one line naming the field and the
value, never a traceback."""

import json
from pathlib import Path

import pytest
from replay_helpers import one_line_error, tiny, tune_tiny, voting_records, write

from cascade._cli import main


@pytest.fixture
def tiny_path(tmp_path: Path) -> str:
    return str(write(tmp_path / "tiny.jsonl.gz", tiny()))


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--ladder", "cheap,gpt-9", "--validator", "confidence"], ["--ladder", "gpt-9"]),
        (["--ladder", ",", "--validator", "confidence"], ["--ladder", "','"]),
        (["--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "1.5"], ["--thresholds", "1.5"]),
        (["--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "-0.1"], ["--thresholds", "-0.1"]),
        (["--ladder", "cheap,top", "--validator", "confidence", "--max-rungs", "0"], ["--max-rungs", "0"]),
        (["--ladder", "cheap,top", "--validator", "consistency", "--thresholds", "0.5"], ["consistency", "'cheap'"]),
        (
            ["--ladder", "cheap,top", "--validator", "confidence", "--policy", "/nonexistent/p.json"],
            ["policy file", "/nonexistent/p.json"],
        ),
        (
            [
                "--ladder",
                "cheap,top",
                "--validator",
                "confidence",
                "--thresholds",
                "0.5",
                "--plot",
                "/nonexistent/d/x.png",
            ],
            ["--plot", "/nonexistent/d/x.png"],
        ),
    ],
)
def test_eval_bad_input(
    tiny_path: str, capsys: pytest.CaptureFixture[str], extra: list[str], needles: list[str]
) -> None:
    assert main(["eval", tiny_path, *extra]) == 2
    one_line_error(capsys, *needles)


def test_missing_file_and_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing.jsonl"), "--ladder", "a,b", "--validator", "confidence"]) == 2
    one_line_error(capsys, "data", "missing.jsonl'")
    write(tmp_path / "tiny.jsonl.gz", tiny())
    (tmp_path / "catalog.json").write_text(json.dumps({"format_version": 1, "datasets": {"tiny": {}}}))
    assert main(["eval", "nope", "--data-dir", str(tmp_path), "--ladder", "a,b", "--validator", "confidence"]) == 2
    one_line_error(capsys, "unknown dataset 'nope'", "['tiny']")


def test_confidence_needs_a_recorded_confidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path / "votes.jsonl.gz", voting_records()))  # no confidence recorded
    assert main(["eval", path, "--ladder", "voter,top", "--validator", "confidence", "--thresholds", "0.5"]) == 2
    one_line_error(capsys, "--validator confidence", "'voter'")


def test_tune_unwritable_out_and_policy_mismatch(
    tiny_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ltt = ["--epsilon", "0.5", "--method", "ltt", "--target", "agreement"]
    assert main(tune_tiny(tiny_path, *ltt, "--out", str(tmp_path / "no" / "p.json"))) == 2
    one_line_error(capsys, "policy file", "p.json")
    out = str(tmp_path / "p.json")
    empirical = ["--epsilon", "0.5", "--delta", "0.5", "--method", "empirical", "--target", "agreement"]
    assert main(tune_tiny(tiny_path, *empirical, "--out", out)) == 0
    capsys.readouterr()
    assert main(["eval", tiny_path, "--ladder", "cheap,mid,top", "--validator", "agreement", "--policy", out]) == 2
    one_line_error(capsys, "--validator", "'confidence'", "'agreement'")
    assert main(["eval", tiny_path, "--ladder", "mid,top", "--validator", "confidence", "--policy", out]) == 2
    one_line_error(capsys, "--ladder", "'cheap'")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[1, 2]", "format"),
        (
            '{"format": "cascade-replay-policy", "dataset": "t", "validator": "confidence",'
            ' "rungs": [{"model": "top"}], "threshold": "high"}',
            "threshold",
        ),
        (
            '{"format": "cascade-replay-policy", "dataset": "t", "validator": "confidence",'
            ' "rungs": [{"model": "top"}], "threshold": 0.5, "colour": 1}',
            "colour",
        ),
        ("{not json", "policy file"),
    ],
)
def test_bad_policy_file(
    tiny_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, needle: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_text(body)
    assert main(["eval", tiny_path, "--ladder", "cheap,top", "--validator", "confidence", "--policy", str(p)]) == 2
    one_line_error(capsys, needle)


def test_a_reader_that_leaves_early_is_not_an_error(tiny_path: str) -> None:
    """`cascade eval ... | head`: the pipe is gone before the report is written; no traceback, exit 0."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cascade._cli", "eval", tiny_path, "--ladder", "cheap,top",
           "--validator", "confidence", "--thresholds", "0.5"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    proc.stdout.close()  # the reader leaves before a line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_tune_writes_nothing_unasked_and_fails_when_not_certified(
    tiny_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    certified = ["--epsilon", "0.6", "--delta", "0.5", "--method", "empirical"]
    assert main(tune_tiny(tiny_path, *certified)) == 0
    text = capsys.readouterr().out
    assert "nothing written" in text and "--out" in text and "Cascade(Ladder(rungs))" not in text
    assert "no guarantee on new queries (method empirical)" in text and "certified" not in text
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.jsonl.gz"]  # no cascade-policy.json in the cwd
    strict = ["--epsilon", "0.5", "--method", "ltt"]  # LTT cannot certify 0.5 on 4 items
    assert main(tune_tiny(tiny_path, *strict)) == 1
    text = capsys.readouterr().out
    assert "NOT certified" in text and "nothing written" in text and "Cascade(" not in text
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.jsonl.gz"]


def test_eval_says_which_threshold_it_used(tiny_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", tiny_path, "--ladder", "cheap,top", "--validator", "confidence"]) == 0
    captured = capsys.readouterr()
    assert "--thresholds 0.5" in captured.err and "no --thresholds" in captured.err
    assert main(["eval", tiny_path, "--ladder", "cheap,top", "--validator", "confidence", "--thresholds", "0.5"]) == 0
    assert capsys.readouterr().err == ""  # chosen: nothing to say


@pytest.mark.parametrize("command", ["eval", "tune", "stats"])
def test_an_unknown_flag_prints_the_subcommands_usage(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        required = [] if command == "stats" else ["--ladder", "a,b", "--validator", "confidence"]
        main([command, "x.jsonl", *required, "--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: cascade {command} " in err and "unrecognized arguments: --no-such-flag" in err
