"""The demo's calibration: every rung alone on one half of the items, recorded as a dataset, fitted by
`cascade tune`; the policy then runs live and decides as it did in replay. Over the suite's test
server (the same code path as `cascade demo --calibrate`, scripted rungs instead of llama.cpp)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from demo_helpers import label_reply

from cascade import Ladder, OpenAICompatible, Rung
from cascade.demo import TICKET_TASK, load_items
from cascade.demo._calibrate import (
    calibration_dataset,
    confidence_reading,
    load_policies,
    policy_path,
    split_items,
    tune,
    write_dataset,
)
from cascade.demo._run import TaskRun, Tuning, hard_checks, params_for, run_task, validators_for
from cascade.demo._tasks import INVOICE_TASK, LABELS
from cascade.local._models import DEFAULT_MODELS
from cascade.replay import load_dataset
from cascade.testing import Reply, TestServer
from cascade.validators._policy import policy_ladder

ITEMS = load_items(TICKET_TASK)[:12]
GOLD = {item["text"]: item["gold"] for item in ITEMS}
PRICES = {"medium": (0.10, 0.10), "large": (0.20, 0.60)}


def test_the_splits_are_disjoint_halves_of_every_item() -> None:
    items = load_items(TICKET_TASK)
    cal, rep = split_items(items, "calibration"), split_items(items, "report")

    def ids(xs: list[dict[str, Any]]) -> set[str]:
        return {i["id"] for i in xs}

    assert ids(cal).isdisjoint(ids(rep)) and ids(cal) | ids(rep) == ids(items)
    assert abs(len(cal) - len(rep)) <= 1 and split_items(items, "all") == items


def _script(server: TestServer) -> None:
    """medium: sure and right on two items of three, unsure and wrong on the third; large: always right."""

    def medium(body: dict[str, Any]) -> Reply:
        text = body["messages"][-1]["content"]
        i = next(n for n, item in enumerate(ITEMS) if item["text"] == text)
        if i % 3 == 2:
            wrong = next(label for label in LABELS if label != GOLD[text])
            return label_reply(wrong, 0.45 + 0.01 * i)
        return label_reply(GOLD[text], 0.9 + 0.005 * i)

    server.responder("medium", medium)
    server.responder("large", lambda body: label_reply(GOLD[body["messages"][-1]["content"]], 0.99))


def _rung(server: TestServer, name: str, *, top: bool) -> Rung:
    return Rung(
        name=name,
        provider=OpenAICompatible(server.base_url),
        model=name,
        price_in=PRICES[name][0],
        price_out=PRICES[name][1],
        params=params_for(TICKET_TASK, name, Tuning()),
        validators=validators_for(TICKET_TASK, None, top=top),  # None: confidence recorded, not gating
    )


def _calibration_runs(server: TestServer) -> dict[str, TaskRun]:
    async def go() -> dict[str, TaskRun]:
        return {
            name: await run_task(TICKET_TASK, ITEMS, Ladder([_rung(server, name, top=name == "large")]), mode="cal")
            for name in ("medium", "large")
        }

    return asyncio.run(go())


def test_calibration_is_a_dataset_cascade_tune_fits_and_the_policy_decides_live_as_in_replay(
    server: TestServer, tmp_path: Path
) -> None:
    _script(server)
    runs = _calibration_runs(server)
    dataset = write_dataset(TICKET_TASK, calibration_dataset(TICKET_TASK, ITEMS, runs), tmp_path / "data")
    catalog = json.loads((dataset.parent / "catalog.json").read_text())["datasets"]["demo_tickets"]
    assert catalog["confidence_reading"] == {"label_field": "label", "labels": list(LABELS)}
    ds = load_dataset(dataset)
    assert [r.id for r in ds.records] == [i["id"] for i in ITEMS] and ds.model_names == ["medium", "large"]
    first = ds.records[2].responses["medium"].samples[0]
    assert first.correct is False and first.confidence is not None and first.confidence < 0.5

    policy, printed = tune(dataset, ["medium", "large"], tmp_path / "policy-tickets.json")
    assert policy.models == ["medium", "large"] and policy.method == "empirical" and policy.target == "match"
    assert policy.confidence == confidence_reading(TICKET_TASK)  # measured live as it was recorded
    assert "ladder: medium > large" in printed

    replayed = [policy.decide(r)[0] for r in ds.records]
    assert replayed == [0, 0, 1] * 4  # sure answers kept, the unsure wrong ones escalated

    async def live() -> TaskRun:
        providers = {m: OpenAICompatible(server.base_url) for m in policy.models}
        params = {m: params_for(TICKET_TASK, m, Tuning()).model_dump(exclude_defaults=True) for m in policy.models}
        checks = {m: hard_checks(TICKET_TASK, top=m == "large") for m in policy.models}  # the schema parses
        ladder = policy_ladder(policy, providers, params=params, checks=checks)
        return await run_task(TICKET_TASK, ITEMS, ladder, mode="cascade")

    run = asyncio.run(live())
    assert [policy.models.index(o.result.answered_by or "") for o in run.outcomes] == replayed
    assert run.correct == len(ITEMS)


def test_a_sample_whose_hard_checks_failed_is_recorded_unacceptable(server: TestServer, tmp_path: Path) -> None:
    # The invoice rung below the top invents a number the message does not hold: "grounded" fails.
    items = load_items(INVOICE_TASK)[:1]
    invented = {**items[0]["gold"], "invoice_number": "NOT-IN-THE-TEXT"}
    tokens: list[tuple[str, float, dict[str, float]]] = [(json.dumps(invented), math.log(0.99), {})]
    server.responder("medium", lambda body: Reply(content=json.dumps(invented), logprobs=tokens, tokens_in=50))
    rung = Rung(
        name="medium", provider=OpenAICompatible(server.base_url), model="medium", price_in=0.1, price_out=0.1,
        params=params_for(INVOICE_TASK, "medium", Tuning()), validators=validators_for(INVOICE_TASK, None, top=False),
    )  # fmt: skip
    run = asyncio.run(run_task(INVOICE_TASK, items, Ladder([rung]), mode="cal"))
    record = calibration_dataset(INVOICE_TASK, items, {"medium": run}).records[0]
    assert record["responses"]["medium"]["samples"][0]["confidence"] == 0.0  # sure, but never acceptable


def test_shipped_policies_were_fitted_by_cascade_tune_on_the_calibration_split() -> None:
    policies = load_policies(["tickets", "invoices"])
    known = [m.name for m in DEFAULT_MODELS]
    for task, policy in policies.items():
        assert policy.method == "empirical" and policy.target == "match" and policy.fit["split"] == "train"
        assert policy.fit["n"] == len(
            split_items(load_items(TICKET_TASK if task == "tickets" else INVOICE_TASK), "calibration")
        )
        assert all(m in known for m in policy.models) and policy.models[-1] == known[-1]
    assert policies["tickets"].confidence == confidence_reading(TICKET_TASK)
    assert policies["invoices"].confidence == confidence_reading(INVOICE_TASK)


CALIBRATION_DATA = Path(__file__).resolve().parents[1] / "data" / "demo-calibration"


def test_the_shipped_policies_are_what_cascade_tune_fits_on_the_shipped_calibration_data(tmp_path: Path) -> None:
    for task, shipped in load_policies(["tickets", "invoices"]).items():
        refit, _printed = tune(
            CALIBRATION_DATA / f"demo_{task}.jsonl.gz", ["small", "medium", "large"], tmp_path / "p.json"
        )
        assert refit.to_json() == shipped.to_json(), task


def test_a_failed_refit_never_passes_off_the_policy_already_on_disk(tmp_path: Path) -> None:
    out = tmp_path / "policy-tickets.json"
    out.write_text(policy_path("tickets").read_text())  # the shipped policy, where --calibrate writes
    with pytest.raises(RuntimeError, match="cascade tune failed"):
        tune(CALIBRATION_DATA / "demo_tickets.jsonl.gz", ["small", "medium", "nosuchrung"], out)
