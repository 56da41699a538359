"""The same core for engines that hand out pandas partitions: Dask ``map_partitions``, Spark ``mapInPandas``.

:class:`PartitionMapper` is what gets pickled to the workers: the factory and the row spec, nothing
built. Each worker process builds its :class:`BatchRunner` on the first partition it gets and keeps it
for the next ones (a process-wide cache, keyed by the mapper's id), as a Ray actor does.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ._batch import BatchRunner, CascadeFactory, absolute_dir, check_factory
from ._rows import RowSpec

if TYPE_CHECKING:
    import pandas as pd

_RUNNERS: dict[tuple[str, int], BatchRunner] = {}
_LOCK = threading.Lock()


class PartitionMapper:
    """``mapper(df) -> df`` for Dask's ``map_partitions``; ``mapper.iter(dfs)`` for Spark's ``mapInPandas``.

    The arguments are those of :func:`cascade.ray.map_dataset` (no job-wide cap: that needs Ray).
    """

    def __init__(
        self,
        factory: CascadeFactory,
        *,
        messages: str | None = None,
        prompt: str | None = None,
        system: str | None = None,
        id_column: str | None = None,
        fields: tuple[str, ...] | list[str] = (),
        concurrency: int = 16,
        log_dir: str | os.PathLike[str] | None = None,
        resume: bool = True,
    ) -> None:
        check_factory(factory)
        self.factory = factory
        self.spec = RowSpec(messages=messages, prompt=prompt, system=system, id_column=id_column, fields=tuple(fields))
        self.concurrency = concurrency
        self.log_dir = absolute_dir(log_dir)
        self.resume = resume
        self.id = uuid.uuid4().hex

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.runner().answer(frame)

    def iter(self, frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            yield self(frame)

    def meta(self, rows: pd.DataFrame) -> pd.DataFrame:
        """An empty frame of the output's columns and types, for Dask's ``meta=`` (without it, Dask would
        run the mapper on made-up rows to guess them, and pay for those requests)."""
        import pandas as pd

        out = rows.iloc[:0].copy()
        for name in self.spec.output_columns:
            dtype = {"accepted": "bool", "resumed": "bool", "cost_usd": "float64"}.get(name, "object")
            out[name] = pd.Series(dtype=dtype)
        return out

    def runner(self) -> BatchRunner:
        """This process's runner, built on first use (one per thread: a threaded scheduler's workers
        then never share a Cascade's loop)."""
        key = (self.id, threading.get_ident())
        with _LOCK:
            runner = _RUNNERS.get(key)
            if runner is None:
                runner = _RUNNERS[key] = BatchRunner(
                    self.factory,
                    self.spec,
                    concurrency=self.concurrency,
                    log_dir=self.log_dir,
                    resume=self.resume,
                )
            return runner
