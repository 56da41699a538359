"""The Dask recipe: the same core as the Ray path, on ``map_partitions`` with a 2-process scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

dd = pytest.importorskip("dask.dataframe", reason="Dask is not installed here: pip install 'cascade-router[dask]'")
pd = pytest.importorskip("pandas", reason="pandas comes with the [dask] extra")

from batch_jobs import PROMPT, ServerLadder, answer, answered_twice, events, tickets  # noqa: E402

from cascade.ray import PartitionMapper  # noqa: E402
from cascade.testing import TestServer  # noqa: E402

N = 400


def test_map_partitions_answers_every_row_once_and_a_rerun_pays_nothing(server: TestServer, tmp_path: Path) -> None:
    server.responder("small-m", answer)
    server.responder("large-m", answer)
    mapper = PartitionMapper(
        ServerLadder(server.base_url), prompt=PROMPT, id_column="id", fields=["label"], log_dir=tmp_path
    )
    rows = dd.from_pandas(pd.DataFrame(tickets(N)), npartitions=8)
    job = rows.map_partitions(mapper, meta=mapper.meta(rows._meta))

    out = job.compute(scheduler="processes", num_workers=2)
    assert len(out) == N and sorted(out["id"]) == list(range(N))
    assert out["accepted"].all() and (out["label"] == [f"L{i}" for i in out["id"]]).all()
    logs = sorted(tmp_path.glob("worker-*.jsonl"))
    assert 1 <= len(logs) <= 2  # one Cascade per worker process, kept across its partitions
    assert sorted(e["request_id"] for e in events(tmp_path, "request")) == sorted(out["request_id"])
    assert sum(e["calls"] for e in events(tmp_path, "attempt")) == len(server.requests)

    calls = len(server.requests)
    again = job.compute(scheduler="threads", num_workers=2)  # fresh Cascades (one per thread), same logs
    assert again["resumed"].all() and len(server.requests) == calls  # a rerun skips every answered row
    assert (again["label"] == out.loc[again.index, "label"]).all()
    assert not answered_twice(tmp_path)
