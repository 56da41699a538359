"""Small hand-made recordings with known answers for the replay tests."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from cascade.replay import Dataset, ModelInfo, Record

PRICES = {"cheap": (1.0, 1.0), "mid": (5.0, 5.0), "top": (20.0, 20.0), "voter": (2.0, 3.0)}


def entry(
    answers: list[Any],
    gold: Any,
    conf: list[float | None] | None = None,
    tokens_in: int = 100,
    tokens_out: int = 10,
    price: tuple[float, float] = (1.0, 1.0),
    variants: list[str] | None = None,
) -> dict[str, Any]:
    n = len(answers)
    samples = []
    for i, a in enumerate(answers):
        s: dict[str, Any] = {
            "text": str(a),
            "answer": a,
            "correct": a == gold,
            "confidence": conf[i] if conf else None,
            "logprob": None,
            "variant": variants[i] if variants else None,
        }
        if n > 1:
            s["tokens_out"] = tokens_out
        samples.append(s)
    total_out = tokens_out * n
    cost = (tokens_in * price[0] + total_out * price[1]) / 1e6
    return {
        "samples": samples,
        "tokens_in": tokens_in,
        "tokens_out": total_out,
        "cost_usd": cost,
        "latency_ms": None,
        "cost_is_estimate": True,
    }


def record(rid: str, gold: str, responses: dict[str, dict[str, Any]], split: str = "test") -> dict[str, Any]:
    return {
        "id": rid,
        "split": split,
        "task": "multiple_choice",
        "messages": [{"role": "user", "content": f"question {rid}"}],
        "gold": gold,
        "responses": responses,
    }


def write(path: Path, recs: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


def tune_tiny(path: str | Path, *options: str) -> list[str]:
    """``cascade tune`` arguments over a ``tiny()`` recording: the cheap/top confidence ladder on its test split."""
    return ["tune", str(path), "--ladder", "cheap,top", "--validator", "confidence", "--split", "test", *options]


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The command's stderr, asserted to be one line (no traceback) holding every needle."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


def tiny() -> list[dict[str, Any]]:
    """Four queries, gold A. cheap is right on q0, q1 (confident) and wrong on q2, q3; top always right."""
    out = []
    spec = [("A", 0.9, "A"), ("A", 0.95, "A"), ("B", 0.3, "A"), ("C", 0.2, "D")]
    for i, (cheap, conf, midans) in enumerate(spec):
        out.append(
            record(
                f"q{i}",
                "A",
                {
                    "cheap": entry([cheap], "A", [conf], price=PRICES["cheap"]),
                    "mid": entry([midans], "A", [0.5], price=PRICES["mid"]),
                    "top": entry(["A"], "A", [0.99], price=PRICES["top"]),
                },
            )
        )
    return out


def dataset(recs: list[dict[str, Any]], name: str = "tiny") -> Dataset:
    records = [Record.model_validate(r) for r in recs]
    models = [ModelInfo(m, *PRICES.get(m, (1.0, 1.0))) for m in records[0].responses]
    return Dataset(name, records, models, {})


def synthetic(n: int, rng: random.Random, split: str = "train") -> list[dict[str, Any]]:
    """A cheap model whose confidence predicts whether it agrees with the top model (known law)."""
    out = []
    for i in range(n):
        conf = rng.random()
        right = rng.random() < 0.3 + 0.65 * conf
        out.append(
            record(
                f"s{split}{i}",
                "A",
                {
                    "cheap": entry(["A" if right else "B"], "A", [conf], price=PRICES["cheap"]),
                    "top": entry(["A"], "A", [0.9], price=PRICES["top"]),
                },
                split=split,
            )
        )
    return out


def voting_records() -> list[dict[str, Any]]:
    """Three queries for a 4-sample voter (cot, cot, pot, pot): unanimous right, split, unanimous wrong."""
    recs = []
    # (voter samples cot, cot, pot, pot) -> unanimous on v0, split on v1, wrong-but-unanimous on v2
    for i, votes in enumerate([["A", "A", "A", "A"], ["A", "B", "C", "B"], ["D", "D", "D", "D"]]):
        recs.append(
            record(
                f"v{i}",
                "A",
                {
                    "voter": entry(
                        votes,
                        "A",
                        tokens_in=1000,
                        tokens_out=5,
                        price=PRICES["voter"],
                        variants=["cot", "cot", "pot", "pot"],
                    ),
                    "top": entry(["A"], "A", price=PRICES["top"]),
                },
            )
        )
    return recs
