"""The demo's grounding check: every extracted invoice field must be found in the message."""

from __future__ import annotations

import datetime as dt

import pytest

from cascade import Completion
from cascade._types import Message
from cascade.demo._grounding import grounded, number_readings, unsupported_fields
from cascade.demo._tasks import INVOICE_TASK, Invoice, load_items
from cascade.validators import Candidate


@pytest.mark.parametrize(
    ("token", "readings"),
    [
        ("3.420,00", {3420.0}),
        ("1,284.50", {1284.5}),
        ("3.420", {3.42, 3420.0}),
        ("85,000", {85.0, 85000.0}),
        ("1 150,00", {1150.0}),
        ("640.00", {640.0}),
        ("650", {650.0}),
        ("1.2.3", set()),
    ],
)
def test_number_readings(token: str, readings: set[float]) -> None:
    assert number_readings(token) == readings


def _invoice(**change: object) -> Invoice:
    base: dict[str, object] = {
        "vendor": "Nordhaus Logistik GmbH",
        "invoice_number": "88412",
        "total": 3420.0,
        "currency": "EUR",
        "due_date": dt.date(2025, 4, 30),
    }
    return Invoice.model_validate(base | change)


TEXT = "Hi, please find attached invoice no. 88412 from Nordhaus Logistik GmbH for EUR 3.420,00, due 30.04.2025."


def test_the_gold_answer_is_grounded() -> None:
    assert unsupported_fields(_invoice(), TEXT) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": 3.42}, "total=3.42"),  # 3.420,00 read with the wrong decimal separator
        ({"currency": "USD"}, "currency='USD'"),
        ({"due_date": dt.date(2025, 3, 30)}, "due_date='2025-03-30'"),
        ({"vendor": "Nordhaus AG"}, "vendor='Nordhaus AG'"),
        ({"invoice_number": "88413"}, "invoice_number='88413'"),
    ],
)
def test_each_unsupported_field_is_named(change: dict[str, object], field: str) -> None:
    assert unsupported_fields(_invoice(**change), TEXT) == [field]


def test_month_names_and_currency_symbols_count() -> None:
    text = "Our invoice GL-557 from Greenleaf Catering comes to £865.20 and is due on 1 July 2025."
    inv = Invoice(vendor="Greenleaf Catering", invoice_number="GL-557", total=865.2, currency="GBP",
                  due_date=dt.date(2025, 7, 1))  # fmt: skip
    assert unsupported_fields(inv, text) == []
    assert unsupported_fields(inv.model_copy(update={"currency": "USD"}), text) == ["currency='USD'"]


def test_every_gold_answer_of_the_demo_is_grounded() -> None:
    """The check must never reject a right answer on the demo's own data."""
    for item in load_items(INVOICE_TASK):
        assert unsupported_fields(Invoice.model_validate(item["gold"]), item["text"]) == [], item["id"]


def test_the_check_names_the_fields_in_its_verdict() -> None:
    messages: list[Message] = [{"role": "user", "content": TEXT}]
    candidate = Candidate(text="{}", completion=Completion(text="{}", tokens_in=1, tokens_out=1), messages=messages)
    candidate.parsed = _invoice(total=3.42, currency="USD")
    verdict = grounded(lambda c: TEXT)(candidate)
    assert not verdict.passed and verdict.reason == "custom:grounded"
    assert "total=3.42" in verdict.detail and "currency='USD'" in verdict.detail
    candidate.parsed = _invoice()
    assert grounded(lambda c: TEXT)(candidate).passed
