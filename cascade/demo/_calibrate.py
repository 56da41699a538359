"""Honest thresholds, fitted the way a user fits theirs: by ``cascade tune``, on one half of the demo's
items (the calibration split), with the figures reported on the other half.

``cascade demo --calibrate`` runs every rung alone on the calibration split (each rung below the top
with its confidence recorded), writes what they answered as a recorded dataset (format v1, with the
confidence reading in its catalog entry), and runs ``cascade tune`` on it; the policy files it writes
(``demo/data/policy-<task>.json``) are what ``cascade demo`` runs live, through ``policy_ladder``
(``Cascade.from_policy``'s ladder). The fit is ``--method empirical --target match --epsilon 0``: the
cheapest ladder at least as accurate as the top rung alone on the calibration split. Not certified:
25 items cannot certify anything, and the report says so.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..replay._policy import Policy
from ..replay._record import MIN_COST_USD, Conversion, answer_from_text, write
from ._run import TaskRun
from ._tasks import LABELS, Task

Split = Literal["report", "calibration", "all"]
SPLITS: tuple[Split, ...] = ("report", "calibration", "all")


def split_items(items: Sequence[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
    """The calibration split is every other item from the first (0, 2, 4...), the report split the rest."""
    if split == "all":
        return list(items)
    return list(items[0::2] if split == "calibration" else items[1::2])


def policy_folder() -> Path:
    """Where the shipped policies are: the package's ``demo/data``."""
    return Path(str(resources.files("cascade.demo").joinpath("data")))


def policy_path(task: str, folder: Path | None = None) -> Path:
    return (folder or policy_folder()) / f"policy-{task}.json"


def load_policies(tasks: Sequence[str], folder: Path | None = None) -> dict[str, Policy]:
    """The fitted policy of each task (``ConfigError`` naming the file when one is missing or broken)."""
    return {t: Policy.load(policy_path(t, folder)) for t in tasks}


def confidence_reading(task: Task) -> dict[str, Any]:
    """How the demo measures a rung's confidence on ``task`` (the options of its ``Confidence`` check):
    tickets, the label's probability among the labels; invoices, the least sure token of the JSON."""
    if task.parse_model is None:
        return {"label_field": "label", "labels": list(LABELS)}
    return {"aggregate": "min"}


def _sample(outcome: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    attempt = outcome.result.attempts[0]
    leaves = [leaf for v in attempt.verdicts for leaf in v.leaves()]
    scores = [leaf.score for leaf in leaves if leaf.validator == "confidence" and leaf.score is not None]
    hard = all(leaf.passed for leaf in leaves if leaf.validator != "confidence")
    # A sample whose hard checks failed is recorded at confidence 0: live, those checks run before the
    # policy's rule and escalate it whatever its confidence.
    confidence = 0.0 if not hard else scores[0] if scores else None
    text = attempt.output or ""
    # The answer is what the rung said (its JSON, else its text), also when its checks refused it.
    answer = outcome.parsed if outcome.parsed is not None else answer_from_text(text) if text else None
    if isinstance(answer, BaseModel):
        answer = answer.model_dump(mode="json")
    sample = {"text": text, "answer": answer, "correct": outcome.correct}
    sample["confidence"] = None if confidence is None else max(0.0, min(1.0, confidence))
    entry = {
        "tokens_in": attempt.tokens_in,
        "tokens_out": attempt.tokens_out,
        "cost_usd": max(attempt.cost_usd, MIN_COST_USD),
        "latency_ms": attempt.latency_ms,
    }
    return sample, entry


def calibration_dataset(task: Task, items: Sequence[dict[str, Any]], runs: Mapping[str, TaskRun]) -> Conversion:
    """Every rung's answer to every calibration item, as records of a format-v1 dataset (split train)."""
    out = Conversion()
    for i, item in enumerate(items):
        responses = {}
        for rung, run in runs.items():
            sample, entry = _sample(run.outcomes[i])
            responses[rung] = {"samples": [sample], **entry}
        out.records.append(
            {
                "id": item["id"],
                "split": "train",
                "task": "classification" if task.parse_model is None else "extraction",
                "messages": task.messages(item["text"]),
                "gold": item["gold"],
                "responses": responses,
            }
        )
    out.models = [
        {"model": r.name, "in_per_1m": r.price_in, "out_per_1m": r.price_out, "price_source": "the demo's rungs"}
        for run in runs.values()
        for r in run.rungs
    ]
    out.requests = len(items)
    return out


def write_dataset(task: Task, data: Conversion, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write(data, folder / f"demo_{task.name}.jsonl.gz", confidence_reading=confidence_reading(task))


def tune_argv(dataset: Path, ladder: Sequence[str], out: Path) -> list[str]:
    """The ``cascade tune`` call that fits a task's policy (printed, so it can be run by hand)."""
    return [
        "tune", str(dataset), "--ladder", ",".join(ladder), "--validator", "confidence",
        "--method", "empirical", "--target", "match", "--epsilon", "0", "--split", "train", "--out", str(out),
    ]  # fmt: skip


def tune(dataset: Path, ladder: Sequence[str], out: Path) -> tuple[Policy, str]:
    """Run ``cascade tune`` on the calibration dataset; the policy it wrote and what it printed."""
    from .._cli import main as cli_main
    from ..replay._cli import EXIT_NOT_CERTIFIED

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = cli_main(tune_argv(dataset, ladder, out))
    # 0: written; EXIT_NOT_CERTIFIED: written too (an empirical fit certifies nothing). Anything else
    # wrote nothing, and the file at ``out`` (the shipped policy) is not this fit's.
    if code not in (0, EXIT_NOT_CERTIFIED):
        raise RuntimeError(f"cascade tune failed (exit {code}), {out} not written:\n{printed.getvalue()}")
    return Policy.load(out), printed.getvalue()
