"""The demo's two workloads: what is asked, how answers are checked, how they are scored against gold.

* tickets: classify a support ticket into one of five labels, answered as ``{"label": ...}``.
* invoices: extract vendor, invoice number, total, currency and due date into :class:`Invoice`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .._types import Message

LABELS = ("billing", "technical", "account", "shipping", "refund")

TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": list(LABELS)}},
    "required": ["label"],
    "additionalProperties": False,
}

TICKET_SYSTEM = """You sort customer support tickets. Pick exactly one label:
- billing: charges, invoices, receipts, prices, plans, payment methods (no money asked back)
- technical: the product, app, website or API malfunctions (errors, crashes, bugs, slowness)
- account: login, password, two-factor, profile, email or username, users, account deletion
- shipping: delivery of physical orders: tracking, delays, lost or damaged parcels, addresses
- refund: the customer wants money back (returns for money, duplicate charges, reimbursements)
Answer with JSON only: {"label": "<one of billing, technical, account, shipping, refund>"}"""


class Invoice(BaseModel):
    """The fields extracted from an invoice message."""

    model_config = ConfigDict(extra="forbid")

    vendor: str = Field(min_length=1, description="the company that issued the invoice")
    invoice_number: str = Field(min_length=1, description="as written, without a leading '#' or 'no.'")
    total: float = Field(ge=0, description="amount due as a plain number, e.g. 1284.5")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD, EUR, GBP")
    due_date: dt.date = Field(description="YYYY-MM-DD")


INVOICE_SYSTEM = """You extract invoice data from a message. Reply with JSON only, with these fields:
vendor (the company that issued the invoice, as written), invoice_number (as written, without a
leading '#' or 'no.'), total (the amount due as a plain number: 1.234,50 means 1234.50), currency
(ISO 4217 code: $ is USD unless another dollar is named, EUR for €, GBP for £), due_date (YYYY-MM-DD;
a date like 03/04/2025 is month/day in US dollar invoices and day/month otherwise)."""


def _invoice_schema() -> dict[str, Any]:
    schema = Invoice.model_json_schema()
    schema.pop("title", None)
    schema["additionalProperties"] = False
    for prop in schema["properties"].values():
        prop.pop("title", None)
        prop.pop("description", None)
    return schema


@dataclass(frozen=True, slots=True)
class Task:
    """One workload: its items, how to build each request, its schema and how to score an answer."""

    name: str
    data_file: str
    system: str
    schema: dict[str, Any]
    max_tokens: int
    score: Callable[[Any, Any], bool]
    parse_model: type[BaseModel] | None = None

    def messages(self, text: str) -> list[Message]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]

    def response_format(self) -> dict[str, Any]:
        """llama.cpp's form: JSON constrained by a schema (it refuses OpenAI's ``json_schema`` form)."""
        return {"type": "json_object", "schema": self.schema}


def _score_ticket(parsed: Any, gold: Any) -> bool:
    return isinstance(parsed, dict) and parsed.get("label") == gold


def _score_invoice(parsed: Any, gold: Any) -> bool:
    if isinstance(parsed, BaseModel):
        parsed = parsed.model_dump(mode="json")
    if not isinstance(parsed, dict):
        return False
    try:
        return (
            str(parsed["vendor"]).strip().casefold() == gold["vendor"].casefold()
            and str(parsed["invoice_number"]).strip().lstrip("#") == gold["invoice_number"]
            and abs(float(parsed["total"]) - float(gold["total"])) < 0.005
            and str(parsed["currency"]).upper() == gold["currency"]
            and str(parsed["due_date"]) == gold["due_date"]
        )
    except (KeyError, TypeError, ValueError):
        return False


TICKET_TASK = Task("tickets", "tickets.jsonl", TICKET_SYSTEM, TICKET_SCHEMA, 16, _score_ticket)
INVOICE_TASK = Task("invoices", "invoices.jsonl", INVOICE_SYSTEM, _invoice_schema(), 96, _score_invoice, Invoice)


def load_items(task: Task) -> list[dict[str, Any]]:
    """The task's items: ``{"id", "text", "gold"}`` (tickets carry their gold as ``label``)."""
    text = resources.files("cascade.demo").joinpath("data").joinpath(task.data_file).read_text(encoding="utf-8")
    items = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            items.append({"id": row["id"], "text": row["text"], "gold": row.get("gold", row.get("label"))})
    return items
