import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from replay_helpers import dataset, entry, record, tiny

from cascade import ProviderError
from cascade._types import CompletionRequest
from cascade.replay import ReplayProvider

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_finds_by_replay_id_and_by_messages() -> None:
    ds = dataset(tiny())
    p = ReplayProvider(ds)
    by_id = _run(p.complete(CompletionRequest("cheap", [{"role": "user", "content": "x"}], {"replay_id": "q2"})))
    assert by_id.text == "B" and by_id.confidence == 0.3 and by_id.finish_reason == "stop"
    by_msg = _run(p.complete(CompletionRequest("cheap", [{"role": "user", "content": "question q1"}], {})))
    assert by_msg.text == "A" and by_msg.confidence == 0.95
    assert by_msg.cost_usd == pytest.approx((100 * 1 + 10 * 1) / 1e6)
    assert p.served(by_msg).record.id == "q1"


def test_unknown_record_and_model_are_clear_errors() -> None:
    p = ReplayProvider(dataset(tiny()))
    with pytest.raises(ProviderError) as e1:
        _run(p.complete(CompletionRequest("cheap", [{"role": "user", "content": "zzz"}], {})))
    assert e1.value.kind == "caller" and e1.value.reason == "replay_no_record"
    with pytest.raises(ProviderError) as e2:
        _run(p.complete(CompletionRequest("gpt-9", [], {"replay_id": "q0"})))
    assert e2.value.kind == "rung_fatal" and "gpt-9" in e2.value.message


def test_seeds_walk_samples_and_prompt_is_charged_once() -> None:
    rec = record(
        "m",
        "A",
        {
            "voter": entry(
                ["A", "B", "A"], "A", tokens_in=1000, tokens_out=7, price=(2.0, 3.0), variants=["cot", "cot", "pot"]
            )
        },
    )
    ds = dataset([rec])
    p = ReplayProvider(ds)
    outs = [_run(p.complete(CompletionRequest("voter", [], {"replay_id": "m", "seed": s}))) for s in (None, 1, 2)]
    assert [o.text for o in outs] == ["A", "B", "A"]
    assert outs[0].cost_usd == pytest.approx((1000 * 2 + 7 * 3) / 1e6)
    assert outs[1].cost_usd == pytest.approx(7 * 3 / 1e6) and outs[1].tokens_in == 0
    costs = [o.cost_usd for o in outs if o.cost_usd is not None]
    assert len(costs) == len(outs) and sum(costs) == pytest.approx(rec["responses"]["voter"]["cost_usd"])
    inter = ReplayProvider(ds, order="interleave")
    second = _run(inter.complete(CompletionRequest("voter", [], {"replay_id": "m", "seed": 1})))
    assert inter.served(second).sample.variant == "pot"
    with pytest.raises(ProviderError, match="3 recorded sample"):
        _run(p.complete(CompletionRequest("voter", [], {"replay_id": "m", "seed": 3})))
