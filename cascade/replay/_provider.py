"""A provider that answers from recorded responses, so a real ``Cascade`` runs offline on them.

The record is found by the ``replay_id`` request param (pass ``extra={"replay_id": id}``), else by
the exact messages. ``seed`` picks the sample: no seed (or 0) is ``samples[0]``, seed ``s`` is
``samples[s]``, so the engine's self-consistency draws (seeds 1..k) get successive samples.
Charging follows section 1.7 of the data README: a one-sample model costs its recorded
``cost_usd``; with several samples the prompt is charged once (on sample 0) and each sample its own
output tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .._errors import ProviderError
from .._types import Completion, CompletionRequest, TokenLogprob
from ._data import Dataset, ModelEntry, Record, Sample

Order = str  # "recorded" | "interleave"
CONFIDENCE_CALL = "replay_confidence_call"
"""Request param of the confidence check's separate call (datasets with ``confidence_cost_usd``)."""


@dataclass(frozen=True, slots=True)
class Served:
    """What the provider served for one call: the record, model, sample index and the sample."""

    record: Record
    model: str
    index: int
    sample: Sample


def _key(messages: Any) -> str:
    return json.dumps([{"role": m.get("role"), "content": m.get("content")} for m in messages], sort_keys=True)


def sample_order(entry: ModelEntry, order: Order) -> list[int]:
    """Indices of ``entry.samples`` in serving order; ``interleave`` alternates prompt variants
    (cot, pot, cot, ...) so the first k samples mix representations as MoT votes do."""
    n = len(entry.samples)
    if order == "recorded":
        return list(range(n))
    groups: dict[str | None, list[int]] = {}
    for i, s in enumerate(entry.samples):
        groups.setdefault(s.variant, []).append(i)
    out: list[int] = []
    lists = list(groups.values())
    for j in range(max(len(g) for g in lists)):
        out.extend(g[j] for g in lists if j < len(g))
    return out


def sample_cost(entry: ModelEntry, served: list[int], price_in: float, price_out: float) -> float:
    """Cost of the given samples: recorded ``cost_usd`` when the model has one sample (less the
    ``confidence_cost_usd`` of a separate confidence call, charged only by the check that makes it),
    else the prompt once plus each sample's output tokens (section 1.7)."""
    if len(entry.samples) == 1:
        return entry.cost_usd - entry.confidence_cost_usd
    per = entry.tokens_out / len(entry.samples)
    out = 0.0
    for i in served:
        t = entry.samples[i].tokens_out
        out += t if t is not None else per
    return (entry.tokens_in * price_in + out * price_out) / 1_000_000


class ReplayProvider:
    """Serves ``dataset``'s recorded samples as completions. ``order`` is ``"recorded"`` or
    ``"interleave"`` (see :func:`sample_order`)."""

    def __init__(self, dataset: Dataset, *, order: Order = "recorded", name: str = "replay") -> None:
        if order not in ("recorded", "interleave"):
            raise ValueError(f"order: expected 'recorded' or 'interleave', got {order!r}")
        self.dataset = dataset
        self.name = name
        self.order = order
        self.prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
        self._by_id = {r.id: r for r in dataset.records}
        self._by_messages: dict[str, Record] = {}
        for r in dataset.records:
            self._by_messages.setdefault(_key(r.messages), r)
        self._served: dict[int, tuple[Completion, Served]] = {}
        self._history: dict[str, dict[str, Served]] = {}
        self.calls = 0

    def find(self, request: CompletionRequest) -> Record:
        rid = request.params.get("replay_id")
        if rid is not None:
            rec = self._by_id.get(str(rid))
            if rec is None:
                raise ProviderError("caller", "replay_unknown_id", f"replay_id {rid!r} is not in {self.dataset.name!r}")
            return rec
        rec = self._by_messages.get(_key(request.messages))
        if rec is None:
            raise ProviderError(
                "caller",
                "replay_no_record",
                f"no record of {self.dataset.name!r} has these messages; pass extra={{'replay_id': ...}}",
            )
        return rec

    async def complete(self, request: CompletionRequest) -> Completion:
        rec = self.find(request)
        entry = rec.responses.get(request.model)
        if entry is None:
            raise ProviderError(
                "rung_fatal",
                "unknown_model",
                f"model {request.model!r} is not recorded in {self.dataset.name!r}; models: {list(rec.responses)}",
            )
        seed = request.params.get("seed")
        pos = int(seed) if seed is not None else 0
        order = sample_order(entry, self.order)
        if not 0 <= pos < len(order):
            raise ProviderError(
                "rung_fatal",
                "replay_no_sample",
                f"seed {seed!r}: {request.model!r} has {len(order)} recorded sample(s) for {rec.id!r}",
            )
        index = order[pos]
        sample = entry.samples[index]
        pin, pout = self.prices.get(request.model, (0.0, 0.0))
        first = pos == 0
        per = entry.tokens_out // len(entry.samples)
        tokens_out = sample.tokens_out if sample.tokens_out is not None else per
        if request.params.get(CONFIDENCE_CALL):  # the check's own "is this right?" call
            return self._confidence_call(request, rec, entry)
        if len(entry.samples) == 1:
            cost = entry.cost_usd - entry.confidence_cost_usd
            tokens_out = entry.tokens_out
        else:
            cost = ((entry.tokens_in * pin if first else 0.0) + tokens_out * pout) / 1_000_000
        logprobs = None
        if sample.logprob is not None:
            logprobs = (TokenLogprob(token=sample.text or "", logprob=sample.logprob),)
        completion = Completion(
            text=sample.text or "",
            tokens_in=entry.tokens_in if first else 0,
            tokens_out=tokens_out,
            finish_reason="stop",
            model=request.model,
            logprobs=logprobs,
            cost_usd=cost,
            confidence=sample.confidence,
            latency_ms=entry.latency_ms if first else None,
        )
        served = Served(rec, request.model, index, sample)
        self._served[id(completion)] = (completion, served)  # keeps the completion alive: ids stay unique
        if first:
            self._history.setdefault(rec.id, {})[request.model] = served
        self.calls += 1
        return completion

    def _confidence_call(self, request: CompletionRequest, rec: Record, entry: ModelEntry) -> Completion:
        """The recorded second call that produced the confidence, charged its ``confidence_cost_usd``."""
        sample = entry.samples[0]
        self.calls += 1
        return Completion(
            text="" if sample.confidence is None else f"{100 * sample.confidence:.4f}",
            tokens_in=0,
            tokens_out=0,
            model=request.model,
            cost_usd=entry.confidence_cost_usd,
            confidence=sample.confidence,
        )

    def served(self, completion: Completion) -> Served:
        """The record and sample behind a completion this provider returned."""
        try:
            return self._served[id(completion)][1]
        except KeyError:
            raise KeyError("this completion was not served by this ReplayProvider") from None

    def history(self, record_id: str) -> dict[str, Served]:
        """The first sample served per model for a record: what earlier rungs answered."""
        return dict(self._history.get(record_id, {}))

    def reset(self) -> None:
        """Forget served completions (kept so validators can read the recorded answer)."""
        self._served.clear()
        self._history.clear()

    async def aclose(self) -> None:
        return None
