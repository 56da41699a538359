"""Offline replay of recorded LLM responses (format v1): the same Cascade, no API calls."""

from ._data import Dataset, ModelEntry, ModelInfo, Record, Sample, default_data_dir, iter_records, load_dataset
from ._metrics import accuracy, apgr, best_single, cost_per_query, hull_auc, oracle, single_models, upper_hull
from ._policy import Policy, RungPolicy
from ._provider import ReplayProvider
from ._validators import ReplaySignal

__all__ = [
    "Dataset",
    "ModelEntry",
    "ModelInfo",
    "Policy",
    "Record",
    "ReplayProvider",
    "ReplaySignal",
    "RungPolicy",
    "Sample",
    "accuracy",
    "apgr",
    "best_single",
    "cost_per_query",
    "default_data_dir",
    "hull_auc",
    "iter_records",
    "load_dataset",
    "oracle",
    "single_models",
    "upper_hull",
]
