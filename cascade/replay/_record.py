"""Your own traffic as recorded data: an escalation log written with ``log_content="full"`` becomes a
"recorded responses" v1 dataset, so ``cascade eval`` and ``cascade tune`` can fit on it.

A request becomes a record when the log holds an answer of every model of the ladder for it (each
attempt's ``output``, tokens and cost; the prompt from its ``request`` event): the requests that
escalated to the top, and any the caller also sent up on purpose (a sampled audit). Requests the cheap
rung answered alone have no top answer to compare with and are counted, not written. The split is a
stable hash of the request id; ``gold`` comes from a metadata key when the caller logged one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._logs._read import BadLine, LogFileError, iter_lines
from ..validators._jsontext import JsonNotFound, find_json
from ._data import FORMAT_VERSION

MIN_COST_USD = 1e-12
"""Format v1 wants ``cost_usd > 0``; a free rung (local, notional price 0) is recorded at this."""


@dataclass
class Conversion:
    """What a log gave: the records written and why the other requests were not."""

    records: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    incomplete: int = 0
    without_prompt: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.records)} records from {self.requests} requests; skipped {self.incomplete} without an answer "
            f"of every model, {self.without_prompt} without a logged prompt (log_content='full' logs it)"
            + (f"; {len(self.bad_lines)} unreadable lines" if self.bad_lines else "")
        )


def answer_from_text(text: str) -> Any:
    """The normalised answer: the JSON the text holds, else the stripped text."""
    try:
        return find_json(text).value
    except JsonNotFound:
        return text.strip()


def _confidence(verdicts: Sequence[dict[str, Any]]) -> float | None:
    for v in verdicts:
        if v.get("validator") == "confidence" and isinstance(v.get("score"), int | float):
            return max(0.0, min(1.0, float(v["score"])))
    return None


def _split(request_id: str, test_share: float) -> str:
    h = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_share else "train"


def convert(
    paths: Iterable[str | os.PathLike[str]],
    *,
    task: str = "classification",
    test_share: float = 0.5,
    gold_key: str | None = None,
) -> Conversion:
    """Read escalation logs and build the records of every request answered by every model of its ladder."""
    if not 0 <= test_share <= 1:
        raise ConfigError(f"test_share: expected a share in [0, 1], got {test_share!r}")
    out = Conversion()
    attempts: dict[str, dict[str, dict[str, Any]]] = {}  # request id -> model -> entry
    prices: dict[str, tuple[float, float]] = {}
    ladders: dict[str, list[str]] = {}  # request id -> models cheapest first, as the walk met them
    for path in paths:
        for _lineno, ev in iter_lines(path, out.bad_lines.append):
            kind = ev.get("event")
            rid = str(ev.get("request_id", ""))
            if kind == "attempt" and ev.get("outcome") in ("accepted", "escalated") and ev.get("output") is not None:
                model = str(ev["model"])
                prices[model] = (float(ev.get("price_in", 0.0)), float(ev.get("price_out", 0.0)))
                met = ladders.setdefault(rid, [])
                if model not in met:
                    met.append(model)
                text = str(ev["output"])
                attempts.setdefault(rid, {})[model] = {
                    "samples": [
                        {
                            "text": text,
                            "answer": answer_from_text(text),
                            "correct": None,
                            "confidence": _confidence(ev["verdicts"]),
                        }
                    ],
                    "tokens_in": int(ev["tokens_in"]),
                    "tokens_out": int(ev["tokens_out"]),
                    "cost_usd": max(float(ev["cost_usd"]), MIN_COST_USD),
                    "latency_ms": ev.get("latency_ms"),
                    "cost_is_estimate": False,
                }
            elif kind == "request":
                out.requests += 1
                _add_record(out, ev, rid, attempts.pop(rid, {}), ladders.pop(rid, []), task, test_share, gold_key)
    ladder_models = list(out.records[0]["responses"]) if out.records else []
    out.models = [
        {"model": m, "in_per_1m": prices[m][0], "out_per_1m": prices[m][1], "price_source": "the escalation log"}
        for m in ladder_models
    ]
    return out


def _add_record(
    out: Conversion,
    ev: dict[str, Any],
    rid: str,
    answers: dict[str, dict[str, Any]],
    seen: list[str],
    task: str,
    test_share: float,
    gold_key: str | None,
) -> None:
    top = ev.get("top_rung") or {}
    top_model = top.get("model")
    if not answers or top_model not in answers or (out.records and set(answers) != set(out.records[0]["responses"])):
        out.incomplete += 1
        return
    prompt = ev.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        out.without_prompt += 1
        return
    order = [m for m in seen if m in answers]
    gold = (ev.get("metadata") or {}).get(gold_key) if gold_key else None
    responses = {m: answers[m] for m in order}
    if gold is not None:
        for entry in responses.values():
            for s in entry["samples"]:
                s["correct"] = s["answer"] == gold
    out.records.append(
        {
            "id": rid,
            "split": _split(rid, test_share),
            "task": task,
            "messages": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "gold": gold,
            "responses": responses,
        }
    )


def write(
    conversion: Conversion,
    out_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    confidence_reading: dict[str, Any] | None = None,
) -> Path:
    """Write the records (gzip when the name ends in ``.gz``) and a ``catalog.json`` entry beside them;
    ``confidence_reading``: the ``Confidence`` options the recorded confidences were measured with
    (a policy fitted on the data measures them alike live)."""
    p = Path(out_path)
    if not conversion.records:
        raise ConfigError(f"--out {str(p)!r}: nothing to write: {conversion.summary()}")
    dataset = name or p.name.split(".")[0]
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wt", encoding="utf-8") as fh:
        for r in conversion.records:
            fh.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    catalog_path = p.parent / "catalog.json"
    catalog: dict[str, Any] = {"format": "recorded responses", "format_version": FORMAT_VERSION, "datasets": {}}
    if catalog_path.exists():
        catalog = json.loads(catalog_path.read_text(encoding="utf-8"))
    catalog.setdefault("datasets", {})[dataset] = {
        "file": p.name,
        "title": f"{dataset}: recorded from escalation logs",
        "task_kind": conversion.records[0]["task"],
        "models_by_mean_cost": conversion.models,
    }
    if confidence_reading is not None:
        catalog["datasets"][dataset]["confidence_reading"] = confidence_reading
    catalog_path.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return p


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dataset", help="turn escalation logs (log_content='full') into recorded data for cascade eval / tune"
    )
    p.add_argument("--from-log", nargs="+", required=True, metavar="LOG", help="escalation logs (JSONL, .gz too)")
    p.add_argument(
        "--out", required=True, help="the dataset file to write (.jsonl or .jsonl.gz); catalog.json beside it"
    )
    p.add_argument("--name", default=None, help="the dataset's name in catalog.json (default: the file's stem)")
    p.add_argument("--task", default="classification", help="task kind recorded with each record")
    p.add_argument("--test-share", type=float, default=0.5, help="share of requests put in the test split")
    p.add_argument("--gold-key", default=None, help="metadata key holding the reference answer, when logged")
    p.set_defaults(func=_main)


def _main(args: Any) -> int:
    import sys

    try:
        conv = convert(args.from_log, task=args.task, test_share=args.test_share, gold_key=args.gold_key)
        path = write(conv, args.out, name=args.name)
    except (ConfigError, LogFileError, OSError) as exc:
        print(f"cascade dataset: error: {exc}", file=sys.stderr)
        return 2
    for bad in conv.bad_lines[:20]:
        print(f"cascade dataset: skipped {bad.file}:{bad.line}: {bad.error}", file=sys.stderr)
    print(f"wrote {path}: {conv.summary()}")
    return 0
