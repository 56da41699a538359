"""The cascade over a ``ray.data.Dataset``: ``map_batches`` on a pool of actors, one Cascade each.

Only the factory, the row spec and an actor handle are pickled to the workers; each actor builds its
Cascade (providers, connection pools, breakers) itself, once, and keeps it for every batch it gets.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ._batch import BatchRunner, CascadeFactory, absolute_dir, check_factory
from ._rows import RowSpec

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import ray.data


def _ship_by_value(factory: object) -> None:
    """A factory defined in a module with no file (code run by ``exec``, a docs block) would be pickled
    by reference and fail to import on the workers: ship that module's code with it instead."""
    import ray.cloudpickle

    name = getattr(factory, "__module__", None) or getattr(type(factory), "__module__", None)
    module = sys.modules.get(name) if isinstance(name, str) else None
    if module is not None and name != "__main__" and getattr(module, "__file__", None) is None:
        register: Any = ray.cloudpickle.register_pickle_by_value  # untyped in Ray
        register(module)


class _Ledger:
    """The job's spend, as a Ray actor: reservations and settlements from every worker, in one place."""

    def __init__(self, cap_usd: float) -> None:
        self.cap = cap_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.refused = 0
        self.stopped = False

    def reserve(self, amount: float) -> bool:
        if self.stopped or self.spent + self.reserved + amount > self.cap + 1e-12:
            self.stopped = True  # the first request that may not fit stops the job: no more calls
            self.refused += 1
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual

    def state(self) -> dict[str, Any]:
        return {
            "cap_usd": self.cap,
            "spent_usd": self.spent,
            "reserved_usd": self.reserved,
            "refused": self.refused,
            "stopped": self.stopped,
        }


class JobBudget:
    """A job-wide spend cap shared by every worker through one Ray actor (create it after ``ray.init``).

    Each request reserves its own per-request cap before it starts and settles what it spent, so the
    job's spend stays at or under ``cap_usd`` even with every worker's requests in flight. The price:
    two actor calls per request. :meth:`state` reads the ledger (spent, refused, stopped).
    """

    def __init__(self, cap_usd: float) -> None:
        number = isinstance(cap_usd, (int, float)) and not isinstance(cap_usd, bool)
        if not number or not math.isfinite(cap_usd) or cap_usd < 0:
            raise ConfigError(f"cap_usd: expected a finite number >= 0 (USD), got {cap_usd!r}")
        import ray

        self.cap_usd = float(cap_usd)
        self.actor: Any = ray.remote(num_cpus=0)(_Ledger).remote(self.cap_usd)

    async def reserve(self, amount: float) -> bool:
        return bool(await self.actor.reserve.remote(amount))

    async def settle(self, reserved: float, actual: float) -> None:
        await self.actor.settle.remote(reserved, actual)

    def state(self) -> dict[str, Any]:
        import ray

        return dict(ray.get(self.actor.state.remote()))


class CascadeWorker:
    """The ``map_batches`` callable: one per actor, holding that actor's :class:`BatchRunner`."""

    def __init__(
        self,
        factory: CascadeFactory,
        spec: RowSpec,
        concurrency: int,
        log_dir: str | None,
        resume: bool,
        budget: JobBudget | None,
    ) -> None:
        self.runner = BatchRunner(
            factory, spec, concurrency=concurrency, log_dir=log_dir, resume=resume, job_cap=budget
        )

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        return fixed_types(self.runner.answer(batch))


def fixed_types(frame: pd.DataFrame) -> pa.Table:
    """The batch as Arrow with the output columns' types fixed: a batch where no row got an answer would
    otherwise make ``answer`` a null column and ``reasons`` a list of nulls, and the job's blocks (and
    Parquet files) would disagree on the schema."""
    import pyarrow as pa

    types = {
        "request_id": pa.string(),
        "answer": pa.string(),
        "answered_by": pa.string(),
        "accepted": pa.bool_(),
        "outcome": pa.string(),
        "cost_usd": pa.float64(),
        "reasons": pa.list_(pa.string()),
        "error": pa.string(),
        "resumed": pa.bool_(),
    }
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name, kind in types.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, pa.field(name, kind), table.column(i).cast(kind))
    return table


def map_dataset(
    ds: ray.data.Dataset,
    factory: CascadeFactory,
    *,
    messages: str | None = None,
    prompt: str | None = None,
    system: str | None = None,
    id_column: str | None = None,
    fields: tuple[str, ...] | list[str] = (),
    workers: int = 2,
    concurrency: int = 16,
    batch_size: int = 256,
    log_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    budget: JobBudget | None = None,
    num_cpus: float = 0.5,
) -> ray.data.Dataset:
    """The dataset with the cascade's output columns added to every row (lazy, like any Ray Data step).

    ``factory(log)`` builds each worker's Cascade (see :data:`CascadeFactory`); ``workers`` actors run
    ``concurrency`` requests each at a time, ``batch_size`` rows per batch. ``messages``/``prompt``/
    ``system``/``id_column``/``fields``: see :class:`RowSpec`. ``log_dir``: each worker writes
    ``worker-<id>.jsonl`` there and, with ``resume``, skips rows any log there already answered (give
    the same directory to a restarted job; on several machines it must be a shared filesystem).
    ``budget``: a :class:`JobBudget` shared by all workers. ``num_cpus`` per actor: the work waits on
    the network, so a fraction of a CPU is enough.
    """
    import ray.data

    spec = RowSpec(messages=messages, prompt=prompt, system=system, id_column=id_column, fields=tuple(fields))
    for name, value in (("workers", workers), ("concurrency", concurrency), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    check_factory(factory)
    if budget is not None and not isinstance(budget, JobBudget):
        raise ConfigError(f"budget: expected a cascade.ray.JobBudget, got {budget!r:.80}")
    _ship_by_value(factory)
    directory = absolute_dir(log_dir)
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
    return ds.map_batches(
        CascadeWorker,
        fn_constructor_args=(factory, spec, concurrency, directory, resume, budget),
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=num_cpus,
    )
