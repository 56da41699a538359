"""``cascade stats`` over many logs (one per batch worker): a directory, a glob, gzip, read as one log."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from logbuilder import LogBuilder, acc, esc

from cascade._cli import main

START = 1_764_115_200.0


def stats(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["stats", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def two_hours(b: LogBuilder) -> None:
    """400 requests over two hours: 10% escalate in the first, 50% in the second."""
    for hour, every in ((0, 10), (1, 2)):
        for i in range(200):
            b.ts = START + hour * 3600 + i * 18
            b.req([esc("small", "schema"), acc("medium")] if i % every == 0 else [acc("small")])


def split(b: LogBuilder, directory: Path) -> list[Path]:
    """The log's requests dealt round-robin to three worker files, the last one gzipped."""
    directory.mkdir()
    files: list[list[str]] = [[], [], []]
    owner: dict[str, int] = {}
    for e in b.events:
        k = owner.setdefault(e["request_id"], len(owner) % 3)
        files[k].append(json.dumps(e))
    paths = [directory / "worker-a.jsonl", directory / "worker-b.jsonl", directory / "worker-c.jsonl.gz"]
    paths[0].write_text("\n".join(files[0]) + "\n")
    paths[1].write_text("\n".join(files[1]) + "\n")
    paths[2].write_bytes(gzip.compress(("\n".join(files[2]) + "\n").encode()))
    return paths


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Two hours of traffic as one log and as three worker logs in ``tmp_path/logs``."""
    b = LogBuilder(START)
    two_hours(b)
    return b.write(tmp_path / "whole.jsonl"), split(b, tmp_path / "logs")


def test_a_directory_of_worker_logs_is_one_log_and_adds_up_per_file(
    logs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, paths = logs

    _, one = stats(capsys, str(whole))
    code, merged = stats(capsys, str(tmp_path / "logs"), "--per-file")
    assert code == 0 and merged["files"] == [str(p) for p in paths]
    for key in ("requests", "attempts", "calls", "accepted", "escalated_requests", "by_rung", "by_reason"):
        assert merged[key] == one[key], key
    assert merged["cost_usd"] == pytest.approx(one["cost_usd"])
    per_file = merged["per_file"]
    assert [f["file"] for f in per_file] == [str(p) for p in paths]
    for key in ("requests", "attempts", "calls", "accepted"):
        assert sum(f[key] for f in per_file) == merged[key], key
    for key in ("escalated_requests", "errors"):
        assert sum(f[key] for f in per_file) == merged[key]["count"], key
    assert sum(f["cost_usd"] for f in per_file) == pytest.approx(merged["cost_usd"])
    assert [f["requests"] for f in per_file] == [134, 133, 133]

    # a quoted glob names the same files; the plain report shows the per-file table and the merged row
    code, globbed = stats(capsys, str(tmp_path / "logs" / "worker-*.jsonl*"))
    assert code == 0 and globbed["files"] == merged["files"] and "per_file" not in globbed
    assert main(["stats", "--plain", "--per-file", str(tmp_path / "logs")]) == 0
    text = capsys.readouterr().out
    assert "By file" in text and "(merged)" in text and "worker-c.jsonl.gz" in text


def test_drift_across_worker_logs_is_the_drift_of_the_whole_log(
    logs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, _ = logs
    for window in (["--compare", "1h", "--until", str(START + 7200)], ["--compare", "200r"]):
        code_one, one = stats(capsys, str(whole), *window, "--fail-on-drift")
        code, merged = stats(capsys, str(tmp_path / "logs"), *window, "--fail-on-drift")
        assert code == code_one == 3 and merged["compare"]["drifted"]
        assert merged["compare"]["findings"] == one["compare"]["findings"]


def test_a_glob_or_a_directory_without_logs_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["stats", str(tmp_path / "nothing-*.jsonl")]) == 2
    assert f"no log file matches {tmp_path}/nothing-*.jsonl" in capsys.readouterr().err
    assert main(["stats", str(tmp_path / "empty")]) == 2
    assert "log directory has no *.jsonl or *.jsonl.gz file" in capsys.readouterr().err
