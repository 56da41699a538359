"""Batches past one machine: the cascade over a Ray Data dataset (and Dask or Spark partitions).

Needs the ``[ray]`` extra (``ray[data]``, pandas); imported only when used.

    import ray
    from cascade.ray import map_dataset

    out = map_dataset(ray.data.read_parquet("tickets/"), make_cascade, prompt="Classify: {title}",
                      id_column="ticket_id", fields=["label"], workers=4, log_dir="logs/")

Each output row carries ``request_id``, ``answer``, ``answered_by``, ``accepted``, ``outcome``,
``cost_usd``, ``reasons``, ``error``, ``resumed`` and the requested ``fields``.
"""

from ._batch import JOB_BUDGET_REASON, BatchRunner, CascadeFactory, JobCap
from ._dataset import CascadeWorker, JobBudget, map_dataset
from ._done import DoneRows
from ._frames import PartitionMapper
from ._rows import OUTPUT_COLUMNS, RowSpec

__all__ = [
    "JOB_BUDGET_REASON",
    "OUTPUT_COLUMNS",
    "BatchRunner",
    "CascadeFactory",
    "CascadeWorker",
    "DoneRows",
    "JobBudget",
    "JobCap",
    "PartitionMapper",
    "RowSpec",
    "map_dataset",
]
