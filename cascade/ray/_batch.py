"""One worker's cascade: built once from a factory, answering batches of rows on its own event loop.

Every engine (a Ray Data actor, a Dask or Spark task) holds one :class:`BatchRunner`. Each row of a
batch comes back as exactly one output row: a request that raises, even through a bug, is a row with
``outcome="error"``; nothing here relies on ``Cascade.map``. Rows run with at most ``concurrency`` in
flight. With a log directory, the worker writes its own JSONL log there and skips rows any worker's log
already answered. With a job-wide cap, each request first reserves its own cap (``budget_usd``) from the
job's ledger and settles what it spent: the job's spend never passes the cap, and once a request does
not fit, the rest of the job's rows come back unrun (``job_budget_exhausted``), for a restart to answer.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._engine import Cascade
from .._errors import CascadeExhausted, ConfigError
from .._result import CascadeResult
from ._done import DoneRows
from ._rows import RowSpec

if TYPE_CHECKING:
    import pandas as pd

CascadeFactory = Callable[[str | None], Cascade]
"""``factory(log) -> Cascade``: called once per worker with the worker's own log path (or None); pass
it on as ``Cascade(..., log=log)``. It is pickled to the workers: build providers inside it."""

JOB_BUDGET_REASON = "job_budget_exhausted"
T = TypeVar("T")


def check_factory(factory: object) -> None:
    """Refuse a factory that cannot be called here, on the driver, not on every worker at its first batch."""
    if not callable(factory):
        raise ConfigError(f"factory: expected a callable factory(log) -> Cascade, got {factory!r:.80}")


def absolute_dir(log_dir: str | os.PathLike[str] | None) -> str | None:
    """The log directory as an absolute path: a worker may run in another folder than the driver."""
    return None if log_dir is None else os.path.abspath(os.fspath(log_dir))


class JobCap(Protocol):
    """The job-wide ledger, shared by every worker (a Ray actor for Ray Data)."""

    async def reserve(self, amount: float) -> bool: ...

    async def settle(self, reserved: float, actual: float) -> None: ...


class BatchRunner:
    """A worker's cascade and the loop it runs on; :meth:`answer` takes and returns a DataFrame."""

    def __init__(
        self,
        factory: CascadeFactory,
        spec: RowSpec,
        *,
        concurrency: int = 16,
        log_dir: str | os.PathLike[str] | None = None,
        resume: bool = True,
        job_cap: JobCap | None = None,
        worker: str | None = None,
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ConfigError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
        self.spec = spec
        self.concurrency = concurrency
        self.worker = worker or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.log_path = None if log_dir is None else str(Path(log_dir) / f"worker-{self.worker}.jsonl")
        self.done = DoneRows(log_dir) if log_dir is not None and resume else None
        if self.done is not None:
            self.done.refresh()  # before our own log exists: what earlier runs and other workers finished
        self.cascade = factory(self.log_path)
        if not isinstance(self.cascade, Cascade):
            raise ConfigError(f"factory: expected it to return a Cascade, got {self.cascade!r:.80}")
        if self.log_path is not None and not os.path.exists(self.log_path):
            raise ConfigError(
                f"factory: the Cascade does not write to its log argument {self.log_path!r}; "
                "build it with Cascade(..., log=log) so restarts and `cascade stats` see this worker"
            )
        self.per_request_cap = self.cascade.budget_usd
        if job_cap is not None and self.per_request_cap is None:
            raise ConfigError(
                "budget: a job-wide cap needs a per-request cap to reserve; build the Cascade "
                "with budget_usd=... (got budget_usd=None)"
            )
        self.job_cap = job_cap
        self.stopped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cascade-batch", daemon=True)
        self._thread.start()

    def answer(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows with the output columns added, in the same order; blocks until all are answered."""
        return self._run(self.answer_async(rows))

    async def answer_async(self, rows: pd.DataFrame) -> pd.DataFrame:
        self.spec.check_columns(list(rows.columns))
        records: list[dict[str, Any]] = rows.to_dict("records")
        if self.done is not None:
            self.done.refresh()
        outputs: list[dict[str, Any] | None] = [None] * len(records)
        todo = iter(enumerate(records))

        async def work() -> None:
            for i, record in todo:
                outputs[i] = await self._row(record)

        await asyncio.gather(*(work() for _ in range(min(self.concurrency, len(records)))))
        import pandas as pd

        out = rows.copy()
        columns = self.spec.output_columns
        filled = [o if o is not None else self._lost() for o in outputs]
        frame = pd.DataFrame(filled, columns=list(columns), index=rows.index)
        for name in columns:
            out[name] = frame[name]
        return out

    def close(self) -> None:
        """Close the cascade's connections and log, then stop the loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.cascade.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # ------------------------------------------------------------------ one row

    async def _row(self, record: dict[str, Any]) -> dict[str, Any]:
        """One row's output; never raises (a failure is the row's ``error``)."""
        try:
            messages = self.spec.messages_of(record)
            rid = self.spec.request_id(record, messages)
        except Exception as exc:  # a row that cannot make a request is that row's error, named
            return self.spec.output_of(_error_result(self._id_or_new(record), exc))
        earlier = self.done.get(rid) if self.done is not None else None
        if earlier is not None:
            return self.spec.output_of(earlier)
        reserved = 0.0
        if self.job_cap is not None:
            reserved = self.per_request_cap or 0.0
            if self.stopped or not await self.job_cap.reserve(reserved):
                self.stopped = True
                return self.spec.output_of(self._refused(rid), reasons=[JOB_BUDGET_REASON])
        spent = reserved  # unknown when the request raised: charge its whole reservation
        try:
            try:
                result = await self.cascade.run(messages, request_id=rid)
                spent = result.cost_usd
            except CascadeExhausted as exc:
                result = exc.result
                spent = result.cost_usd
            except Exception as exc:  # a bug or a hostile provider must not lose the row
                result = _error_result(rid, exc)
            return self.spec.output_of(result)
        finally:
            if self.job_cap is not None:
                await self.job_cap.settle(reserved, spent)

    def _id_or_new(self, record: dict[str, Any]) -> str:
        """The row's id when its id column has one, else a fresh one (the row has nothing stable)."""
        value = record.get(self.spec.id_column) if self.spec.id_column is not None else None
        return f"row-{value}" if value is not None and value == value else uuid.uuid4().hex

    def _refused(self, rid: str) -> CascadeResult:
        message = (
            f"job-wide spend cap reached: row not run (each request reserves its budget_usd="
            f"{self.per_request_cap}); a restart with a higher cap answers it"
        )
        return CascadeResult(request_id=rid, outcome="error", error=message)

    def _lost(self) -> dict[str, Any]:
        """A row no worker task filled (cannot happen while ``_row`` never raises): still a row."""
        return self.spec.output_of(CascadeResult(request_id=uuid.uuid4().hex, outcome="error", error="row lost"))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


def _error_result(rid: str, exc: BaseException) -> CascadeResult:
    text = str(exc)
    return CascadeResult(
        request_id=rid, outcome="error", error=f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    )
