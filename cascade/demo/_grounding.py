"""Is every extracted invoice field supported by the message it came from?

A small model's extraction errors are mostly normalisation errors: ``3.420,00`` read as 3.42, ``£``
read as USD, a due date it made up. Each is caught by asking whether the value can be found in the
source text, under any of the ways it could have been written. No logprobs are needed, so the check
is free, and its verdict names the field that failed. What it cannot catch is a value that *is* in
the text but read the wrong way round (``03/04/2025`` as 4 March instead of 3 April).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from ..validators import Candidate, Verdict

_NUMBER = re.compile(r"\d+(?:(?:[.,']|[ \u00a0](?=\d{3}\b))\d+)*")
_NUMERIC_DATE = re.compile(r"(?<![\d.,/-])(\d{1,4})([./-])(\d{1,2})\2(\d{2,4})(?![\d/-])")
_DAY = re.compile(r"(?<![\d.,/-])(\d{1,2})(?:st|nd|rd|th|er)?(?![.,/-]?\d)")
_YEAR = re.compile(r"(?<![\d.,/-])(\d{4})(?![.,/-]?\d)")
_WORD = re.compile(r"[^\W\d_]+")

MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan janvier janv januar jän",
        "february feb février fevrier févr fevr februar",
        "march mar mars märz maerz",
        "april apr avril avr",
        "may mai",
        "june jun juin juni",
        "july jul juillet juil juli",
        "august aug août aout",
        "september sep sept septembre",
        "october oct octobre oktober okt",
        "november nov novembre",
        "december dec décembre decembre déc dezember dez",
    ),
    start=1,
):
    for _name in _names.split():
        MONTHS[_name] = _number

CURRENCY_MARKS: dict[str, tuple[str, ...]] = {
    "USD": ("usd", "us$", "$", "dollar"),
    "EUR": ("eur", "€", "euro"),
    "GBP": ("gbp", "£", "pound"),
    "JPY": ("jpy", "¥", "yen"),
    "CHF": ("chf",),
    "CAD": ("cad", "c$"),
    "AUD": ("aud", "a$"),
}
"""What counts as naming a currency; a code missing here counts when the code itself is written."""


def number_readings(token: str) -> set[float]:
    """Every value ``token`` can mean: ``3.420,00`` is 3420; ``3.420`` is 3.42 or 3420; ``1 150,00`` is 1150."""
    seps = [c for c in token if not c.isdigit()]
    readings: set[float] = set()
    for point in (".", ",", None):
        if point is not None and (seps.count(point) != 1 or seps[-1] != point):
            continue
        head, _, tail = token.rpartition(point) if point else (token, "", "")
        groups = re.split(r"[.,' \u00a0]", head)
        if len(groups) > 1 and not all(len(g) == 3 for g in groups[1:]):
            continue  # thousands groups have three digits
        readings.add(float("".join(groups) + ("." + tail if point else "")))
    return readings


def numbers_in(text: str) -> set[float]:
    return {v for token in _NUMBER.findall(text) for v in number_readings(token)}


def _numeric_dates(text: str) -> set[dt.date]:
    """Every date a numeric token can mean: ``2025-04-30``, ``30.04.2025``, ``04/30/2025``, ``4/1/25``."""
    dates = set()
    for a, _, b, c in _NUMERIC_DATE.findall(text):
        x, y, z = int(a), int(b), int(c)
        orders = [(x, y, z)] if len(a) == 4 else [(z, y, x), (z, x, y)]  # Y-M-D, or D-M-Y and M-D-Y
        for year, month, day in orders:
            with contextlib.suppress(ValueError):
                dates.add(dt.date(year + 2000 if year < 100 else year, month, day))
    return dates


def _date_supported(value: dt.date, text: str) -> bool:
    """Written with digits only (any order a reader could mean), or with the month's name next to
    a day number and a year that both stand on their own in the text."""
    if value in _numeric_dates(text):
        return True
    named = {MONTHS[w] for w in _WORD.findall(text.casefold()) if w in MONTHS}
    days = {int(d) for d in _DAY.findall(text)}
    years = {int(y) for y in _YEAR.findall(text)}
    return value.month in named and value.day in days and value.year in years


def _currency_supported(code: str, text: str) -> bool:
    folded = text.casefold()
    return any(mark in folded for mark in CURRENCY_MARKS.get(code.upper(), (code.casefold(),)))


def unsupported_fields(invoice: Any, text: str) -> list[str]:
    """The fields of ``invoice`` that cannot be found in ``text``, each with the value it claimed."""
    folded = text.casefold()
    bad = []
    for name in ("vendor", "invoice_number"):
        value = str(getattr(invoice, name)).strip()
        if not value or value.casefold() not in folded:
            bad.append(f"{name}={value!r}")
    if not any(abs(invoice.total - n) < 0.005 for n in numbers_in(text)):
        bad.append(f"total={invoice.total!r}")
    if not _currency_supported(invoice.currency, text):
        bad.append(f"currency={invoice.currency!r}")
    if not _date_supported(invoice.due_date, text):
        bad.append(f"due_date={invoice.due_date.isoformat()!r}")
    return bad


def user_text(candidate: Candidate) -> str:
    """What the user sent: the message the fields must come from."""
    return "\n".join(str(m.get("content", "")) for m in candidate.messages if m.get("role") == "user")


def grounded(source_text: Callable[[Candidate], str] = user_text) -> Callable[[Candidate], Verdict]:
    """A check (for :func:`cascade.validators.check`) that fails naming every unsupported field."""

    def check_grounded(candidate: Candidate) -> Verdict:
        if candidate.parsed is None:
            return Verdict(False, "custom:grounded", detail="nothing parsed", validator="grounded")
        bad = unsupported_fields(candidate.parsed, source_text(candidate))
        if bad:
            return Verdict(
                False, "custom:grounded", detail="not in the message: " + ", ".join(bad), validator="grounded"
            )
        return Verdict(True, "ok", validator="grounded")

    return check_grounded
