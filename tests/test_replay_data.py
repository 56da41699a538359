import gzip
import json
from pathlib import Path

import pytest
from replay_helpers import tiny, write

from cascade import ConfigError
from cascade.replay import iter_records, load_dataset


def test_loads_records_and_models_in_order(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path / "tiny.jsonl.gz", tiny()))
    assert ds.model_names == ["cheap", "mid", "top"]
    assert [r.id for r in ds.split("test")] == ["q0", "q1", "q2", "q3"]
    assert ds.split("train") == []


def test_bad_field_names_file_line_and_field(tmp_path: Path) -> None:
    recs = tiny()
    recs[2]["responses"]["mid"]["cost_usd"] = -1
    path = write(tmp_path / "bad.jsonl.gz", recs)
    with pytest.raises(ConfigError) as err:
        list(iter_records(path))
    msg = str(err.value)
    assert "bad.jsonl.gz:3" in msg and "responses.mid.cost_usd" in msg and "-1" in msg


def test_bad_json_and_duplicate_id(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(tiny()[0]) + "\n{not json\n")
    with pytest.raises(ConfigError, match=r"x.jsonl.gz:2: not valid JSON"):
        list(iter_records(path))
    path2 = write(tmp_path / "d.jsonl.gz", [tiny()[0], tiny()[0]])
    with pytest.raises(ConfigError, match="field id: duplicate id 'q0'"):
        list(iter_records(path2))


def test_models_must_match_across_records(tmp_path: Path) -> None:
    recs = tiny()
    del recs[1]["responses"]["mid"]
    with pytest.raises(ConfigError, match=r"'q1'.*responses"):
        load_dataset(write(tmp_path / "gap.jsonl.gz", recs))


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        load_dataset("nope", tmp_path)


def test_the_default_data_dir_comes_from_the_environment_or_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cascade.replay._data import default_data_dir

    monkeypatch.setenv("CASCADE_DATA_DIR", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("CASCADE_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir() == tmp_path.parent / "shared" / "data"  # not found from the package's own path
