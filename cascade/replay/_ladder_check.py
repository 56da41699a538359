"""What a ladder can do on a recorded dataset: which signals its rungs carry, and the mistakes that
would make a fit silently useless (a duplicated rung, a reversed ladder, answers that are all null,
agreement with nothing to agree with). Shared by ``cascade eval``/``tune`` and the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import ConfigError
from ._data import Dataset


def mean_cost(ds: Dataset, model: str) -> float:
    """Mean recorded cost of one call (``samples[0]``) of ``model`` over every record."""
    from ._provider import sample_cost

    info = ds.model(model)
    costs = [sample_cost(r.responses[model], [0], info.price_in, info.price_out) for r in ds.records]
    return sum(costs) / len(costs) if costs else 0.0


def usable_signals(ds: Dataset, ladder: Sequence[str]) -> list[str]:
    """The validators whose signal every cheaper rung of ``ladder`` carries in ``ds``.

    confidence: a recorded confidence; consistency: several samples per query; agreement: at least
    two rungs below the top (the cheapest has nothing to agree with, so on a 2-model ladder it never
    accepts); schema: an extraction task (the answer is parsed JSON)."""
    cheap = list(ladder[:-1])
    out: list[str] = []
    if cheap and all(any(s.confidence is not None for r in ds.records for s in r.responses[m].samples) for m in cheap):
        out.append("confidence")
    if cheap and all(min(len(r.responses[m].samples) for r in ds.records) >= 2 for m in cheap):
        out.append("consistency")
    if len(ladder) >= 3:
        out.append("agreement")
    if cheap and any(r.task == "extraction" for r in ds.records[:1]):
        out.append("schema")
    return out


def default_validator(ds: Dataset, ladder: Sequence[str]) -> str:
    """The signal a fit should use when the user names none, read from the data (not its name):
    self-consistency where samples are recorded, else confidence, else schema for extraction, else
    agreement."""
    usable = usable_signals(ds, ladder)
    for kind in ("consistency", "confidence", "schema", "agreement"):
        if kind in usable:
            return kind
    return "agreement"


def _hint(ds: Dataset, ladder: Sequence[str], refused: str) -> str:
    others = [v for v in usable_signals(ds, ladder) if v != refused]
    if others:
        return f"try {' or '.join(others)}"
    return "no signal of this data works on this ladder: add a rung or record confidences or samples"


def check_ladder(ds: Dataset, ladder: Sequence[str], validator: str | None, *, order_matters: bool = True) -> list[str]:
    """Refuse a ladder the fit cannot use or should not (a rung dearer than the next) with a
    ConfigError naming the field and value; returns warnings (none today). ``validator`` None and
    ``order_matters`` False: the models are candidates the fit orders itself (never-lose)."""
    seen: set[str] = set()
    for m in ladder:
        if m in seen:
            raise ConfigError(f"--ladder: model {m!r} appears twice in {list(ladder)}; each model is one rung")
        seen.add(m)
        ds.model(m)
    for m in ladder:
        if all(s.answer is None for r in ds.records for s in r.responses[m].samples):
            raise ConfigError(
                f"--ladder: every recorded answer of model {m!r} in {ds.name!r} is null: there is nothing to "
                "check, compare or score (is the answer extracted from the text?)"
            )
    cheap = list(ladder[:-1])
    if not cheap:  # one model alone: no signal is read
        return []
    if validator == "agreement" and len(ladder) < 3:
        raise ConfigError(
            f"--validator agreement: the ladder {list(ladder)} has {len(cheap)} rung below the top, and the "
            "cheapest rung has no earlier answer to agree with, so it would never accept "
            f"({_hint(ds, ladder, validator)})"
        )
    for m in cheap:
        entries = [r.responses[m] for r in ds.records]
        if validator == "consistency" and max(len(e.samples) for e in entries) < 2:
            raise ConfigError(
                f"--validator consistency: model {m!r} has 1 recorded sample per query in {ds.name!r}; "
                f"self-consistency needs several ({_hint(ds, ladder, validator)})"
            )
        if validator == "confidence" and all(s.confidence is None for e in entries for s in e.samples):
            raise ConfigError(
                f"--validator confidence: model {m!r} has no recorded confidence in {ds.name!r} "
                f"({_hint(ds, ladder, validator)})"
            )
    if not order_matters:
        return []
    costs = [mean_cost(ds, m) for m in ladder]
    for (a, ca), (b, cb) in zip(zip(ladder, costs, strict=True), zip(ladder[1:], costs[1:], strict=True), strict=False):
        if ca > cb:  # a reversed ladder pays the dear rung first and ends on a cheap "top" (-59 pt on mmlu)
            raise ConfigError(
                f"--ladder is not cheapest first: {a!r} (${ca:.3g}/query) comes before {b!r} (${cb:.3g}/query); "
                "every request pays the earlier rungs first and the last one is the top: reorder it"
            )
    return []
