"""Streaming loader for "recorded responses" format v1 (see ``shared/data/README.md``).

Records are validated line by line so a broken file fails with its name, line and field, not a
traceback from deep inside an evaluation.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import ConfigError

FORMAT_VERSION = 1


class Sample(BaseModel):
    """One recorded output of one model (``samples[i]``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    text: str | None
    answer: Any = None
    correct: bool | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    logprob: float | None = None
    variant: str | None = None
    tokens_out: int | None = Field(default=None, ge=0)
    f1: float | None = None


class ModelEntry(BaseModel):
    """Everything one model produced for one query, with its recorded or estimated cost."""

    model_config = ConfigDict(frozen=True, extra="allow")

    samples: tuple[Sample, ...] = Field(min_length=1)
    tokens_in: int = Field(ge=0)
    tokens_out: int = Field(ge=0)
    cost_usd: float = Field(gt=0)
    latency_ms: float | None = None
    cost_is_estimate: bool = False


class Record(BaseModel):
    """One query: the prompt, the reference answer and every model's recorded responses."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    split: Literal["train", "test"]
    task: str
    messages: tuple[dict[str, Any], ...] = Field(min_length=1)
    gold: Any = None
    responses: dict[str, ModelEntry] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for i, m in enumerate(v):
            if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                raise ValueError(f"messages[{i}] must be {{'role': 'system'|'user', 'content': str}}, got {m!r}")
        return v


@dataclass(frozen=True)
class ModelInfo:
    """A ladder entry of the catalog: the model's name and list prices (USD per 1M tokens)."""

    model: str
    price_in: float
    price_out: float
    price_source: str = ""


@dataclass
class Dataset:
    """A loaded dataset: its records, the catalog entry and the models cheapest first."""

    name: str
    records: list[Record]
    models: list[ModelInfo]
    catalog: dict[str, Any] = field(default_factory=dict)

    @property
    def model_names(self) -> list[str]:
        return [m.model for m in self.models]

    def split(self, split: str) -> list[Record]:
        if split not in ("train", "test", "all"):
            raise ConfigError(f"split must be 'train', 'test' or 'all', got {split!r}")
        return list(self.records) if split == "all" else [r for r in self.records if r.split == split]

    def model(self, name: str) -> ModelInfo:
        for m in self.models:
            if m.model == name:
                return m
        raise ConfigError(f"model {name!r} is not in dataset {self.name!r}; models are {self.model_names}")


def _loc(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(record)"
    return f"field {loc}: {first['msg']} (got {first.get('input')!r:.80})"


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Yield the records of one ``.jsonl`` or ``.jsonl.gz`` file, validating each line."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"recorded-responses file {str(p)!r} does not exist")
    opener = gzip.open if p.suffix == ".gz" else open
    seen: set[str] = set()
    with opener(p, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{p}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}") from None
            try:
                rec = Record.model_validate(raw)
            except ValidationError as exc:
                rid = raw.get("id") if isinstance(raw, dict) else None
                raise ConfigError(f"{p}:{lineno}: record {rid!r}: {_loc(exc)}") from None
            if rec.id in seen:
                raise ConfigError(f"{p}:{lineno}: field id: duplicate id {rec.id!r}")
            seen.add(rec.id)
            yield rec


def default_data_dir() -> Path:
    """``$CASCADE_DATA_DIR``, else ``../shared/data`` from the current folder (where the recorded data
    sits beside a checkout). Never a path found from where the package is installed."""
    env = os.environ.get("CASCADE_DATA_DIR")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def load_catalog(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    path = d / "catalog.json"
    if not path.exists():
        raise ConfigError(f"no catalog.json in {str(d)!r}; set CASCADE_DATA_DIR to the recorded-responses folder")
    cat: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if cat.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path}: field format_version: expected {FORMAT_VERSION}, got {cat.get('format_version')!r}")
    return cat


def load_dataset(name_or_path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a dataset by catalog name (``mmlu``) or by file path; prices come from the catalog."""
    p = Path(name_or_path)
    if p.exists() and p.is_file():
        d = Path(data_dir) if data_dir is not None else p.parent
        name = p.name.split(".")[0]
        path = p
    elif _looks_like_path(str(name_or_path)):
        raise ConfigError(f"data: file {str(name_or_path)!r} does not exist (or is not a file)")
    else:
        d = Path(data_dir) if data_dir is not None else default_data_dir()
        name = str(name_or_path)
        path = d / f"{name}.jsonl.gz"
    catalog_entry: dict[str, Any] = {}
    if (d / "catalog.json").exists():
        known = load_catalog(d).get("datasets", {})
        catalog_entry = known.get(name, {})
        if not path.exists():
            raise ConfigError(
                f"data: unknown dataset {name!r} (no {path.name} in {str(d)!r}); datasets are {sorted(known)}"
            )
    elif not path.exists():
        raise ConfigError(f"data: dataset {name!r}: no file {str(path)!r} and no catalog in {str(d)!r}")
    records = list(iter_records(path))
    if not records:
        raise ConfigError(f"{path}: no records")
    order = list(records[0].responses)
    for i, r in enumerate(records):
        if list(r.responses) != order:
            raise ConfigError(
                f"{path}: record {r.id!r} (#{i + 1}): field responses: models {list(r.responses)} "
                f"differ from the first record's {order}"
            )
    models = _models(catalog_entry, order, records)
    return Dataset(name=name, records=records, models=models, catalog=catalog_entry)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".jsonl", ".gz", ".json"))


def _models(entry: dict[str, Any], order: list[str], records: list[Record]) -> list[ModelInfo]:
    by_name = {m["model"]: m for m in entry.get("models_by_mean_cost", [])}
    out: list[ModelInfo] = []
    for name in order:
        m = by_name.get(name)
        if m is not None:
            out.append(ModelInfo(name, float(m["in_per_1m"]), float(m["out_per_1m"]), str(m.get("price_source", ""))))
        else:  # no catalog: prices cannot be split; infer a blended per-token price from the records
            tot = sum(r.responses[name].cost_usd for r in records)
            toks = sum(r.responses[name].tokens_in + r.responses[name].tokens_out for r in records) or 1
            price = tot / toks * 1e6
            out.append(ModelInfo(name, price, price, "inferred from recorded cost_usd"))
    return out
