"""Checked by mypy --strict (make typecheck), not run: what users' type checkers infer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

from cascade import Cascade, CascadeResult, FunctionProvider, Rung


class Ticket(BaseModel):
    label: str


rungs = [Rung(name="m", provider=FunctionProvider(lambda r: '{"label": "a"}'), model="m", price_in=0, price_out=0)]


async def typed() -> None:
    cascade = Cascade(rungs, response_model=Ticket)
    assert_type(cascade, Cascade[Ticket])
    result = await cascade.run([{"role": "user", "content": "x"}])
    assert_type(result, CascadeResult[Ticket])
    assert_type(result.parsed, Ticket | None)
    batch = await cascade.map([[{"role": "user", "content": "x"}]])
    assert_type(batch, list[CascadeResult[Ticket]])


def untyped() -> None:
    result = Cascade(rungs).run_sync([{"role": "user", "content": "x"}])
    assert_type(result.parsed, Any | None)
