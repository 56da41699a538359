"""Fold a stream of events into the figures ``cascade stats`` reports, in memory bounded by the number
of rungs, reasons, models and (capped) groups, never by the number of requests.

The only per-request state is the token counts of requests whose attempts have been read but whose
``request`` event has not arrived yet (bounded by the log's concurrency; capped at ``MAX_IN_FLIGHT``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ._histogram import LogHistogram
from ._scores import ScoreHistogram
from ._slices import By, VisitAgg, dim_value, scalar
from ._slices import rows as slice_rows

Event = dict[str, Any]

MAX_IN_FLIGHT = 100_000
"""Requests whose attempts are held waiting for their request event; the oldest are dropped beyond."""
MAX_GROUPS = 100
"""Distinct values of a ``--by metadata.KEY`` group; the rest are folded into ``(other)``."""
MAX_KEYS = 1_000
"""Distinct rungs, models or reasons kept; the rest are folded into ``(other)``."""
MAX_SLICES = 1_000
"""Distinct ``--by`` visit slices kept; the rest are folded into ``(other)`` under their rung."""
MAX_VALIDATORS = 20
"""Validators whose score distribution is kept per rung; scores of further ones are not summarised."""
OTHER = "(other)"
MISSING = "(missing)"

BASELINE_METHOD = (
    "estimate: each request priced once at the top rung's prices (request event 'top_rung'), with the "
    "prompt tokens of its first attempt and the output tokens of its last answered attempt, both per "
    "call; falls back to the request's tokens divided by its attempts when its attempts were not read"
)


def _num(e: Event, key: str) -> float:
    """A numeric field; the reader has checked it is a finite non-negative number or absent/null."""
    return e.get(key) or 0.0


def _rate(n: float, d: float) -> float | None:
    return None if d == 0 else round(n / d, 6)


def _usd(x: float) -> float:
    return round(x, 9)


def _key(counter_or_dict: Any, key: str) -> str:
    return key if key in counter_or_dict or len(counter_or_dict) < MAX_KEYS else OTHER


def _slot(table: dict[str, AttemptAgg], key: str) -> AttemptAgg:
    agg = table.get(key)
    if agg is None:
        agg = table.setdefault(_key(table, key), AttemptAgg())
    return agg


class AttemptAgg:
    """Attempt-level figures for one rung (or one model)."""

    __slots__ = (
        "accepted",
        "attempts",
        "calls",
        "cost",
        "cost_sq",
        "error_kinds",
        "errors",
        "escalated",
        "index",
        "latency",
        "models",
        "reasks",
        "reasons",
        "retries",
        "scores",
        "skipped",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self) -> None:
        self.index: int | None = None
        self.models: Counter[str] = Counter()
        self.attempts = self.accepted = self.escalated = self.errors = self.skipped = self.reasks = 0
        self.calls = self.retries = 0
        self.tokens_in = self.tokens_out = 0.0
        self.cost = self.cost_sq = 0.0
        self.reasons: Counter[str] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.latency = LogHistogram()
        self.scores: dict[str, ScoreHistogram] = {}

    @property
    def reached(self) -> int:
        """Visits that ended on this rung: accepted, escalated, error or skipped (re-asks are not ends)."""
        return self.accepted + self.escalated + self.errors + self.skipped

    @property
    def left(self) -> int:
        """Visits that ended without an accepted answer because the rung failed (escalated or error)."""
        return self.escalated + self.errors

    def add(self, e: Event, reasons: list[str]) -> None:
        self.attempts += 1
        idx = e.get("rung_index")
        if isinstance(idx, int) and (self.index is None or idx < self.index):
            self.index = idx
        model = e.get("model")
        if isinstance(model, str) and len(self.models) < 20:
            self.models[model] += 1
        outcome = e["outcome"]
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "escalated":
            self.escalated += 1
        elif outcome == "error":
            self.errors += 1
            err = e.get("error")
            kind = err.get("kind") if isinstance(err, dict) else None
            self.error_kinds[_key(self.error_kinds, str(kind or "unknown"))] += 1
        elif outcome == "skipped":
            self.skipped += 1
        else:
            self.reasks += 1
        if outcome in ("escalated", "error", "skipped"):
            for r in reasons:
                self.reasons[_key(self.reasons, r)] += 1
        self.calls += int(_num(e, "calls"))
        self.retries += int(_num(e, "retries"))
        self.tokens_in += _num(e, "tokens_in")
        self.tokens_out += _num(e, "tokens_out")
        cost = _num(e, "cost_usd")
        self.cost += cost
        self.cost_sq += cost * cost
        if isinstance(e.get("latency_ms"), (int, float)):
            self.latency.add(_num(e, "latency_ms"))
        self._add_scores(e.get("verdicts"))

    def _add_scores(self, verdicts: Any) -> None:
        if not isinstance(verdicts, list):
            return
        for v in verdicts:
            if not isinstance(v, dict):
                continue
            score, name = v.get("score"), v.get("validator")
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not isinstance(name, str):
                continue
            hist = self.scores.get(name)
            if hist is None:
                if len(self.scores) >= MAX_VALIDATORS:
                    continue
                hist = self.scores[name] = ScoreHistogram()
            hist.add(float(score))

    def as_dict(self, total_cost: float) -> dict[str, Any]:
        reached = self.reached
        return {
            "index": self.index,
            "model": self.models.most_common(1)[0][0] if self.models else None,
            "attempts": self.attempts,
            "reached": reached,
            "accepted": self.accepted,
            "accepted_rate": _rate(self.accepted, reached),
            "escalated": self.escalated,
            "errors": self.errors,
            "escalation_rate": _rate(self.left, reached),
            "skipped": self.skipped,
            "reasks": self.reasks,
            "calls": self.calls,
            "retries": self.retries,
            "retry_rate": _rate(self.retries, self.calls),
            "tokens_in": int(self.tokens_in),
            "tokens_out": int(self.tokens_out),
            "cost_usd": _usd(self.cost),
            "cost_share": _rate(self.cost, total_cost),
            "cost_per_visit_usd": None if reached == 0 else _usd(self.cost / reached),
            "latency_ms": self.latency.summary(),
            "reasons": dict(self.reasons.most_common()),
            "error_kinds": dict(self.error_kinds.most_common()),
            "scores": {name: h.summary() for name, h in sorted(self.scores.items())},
        }


class RequestAgg:
    """Request-level figures (the whole log, or one ``--by metadata.KEY`` group)."""

    __slots__ = (
        "accepted",
        "answered_by",
        "baseline",
        "budget_stops",
        "cost",
        "cost_sq",
        "escalated_requests",
        "escalations",
        "fail_outcomes",
        "fail_reasons",
        "latency",
        "requests",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self) -> None:
        self.requests = self.accepted = self.escalations = self.escalated_requests = self.budget_stops = 0
        self.cost = self.cost_sq = self.baseline = 0.0
        self.tokens_in = self.tokens_out = 0.0
        self.answered_by: Counter[str] = Counter()
        self.fail_outcomes: Counter[str] = Counter()
        self.fail_reasons: Counter[str] = Counter()
        self.latency = LogHistogram()

    def add(self, e: Event, baseline: float) -> None:
        self.requests += 1
        cost = _num(e, "cost_usd")
        self.cost += cost
        self.cost_sq += cost * cost
        self.baseline += baseline
        self.tokens_in += _num(e, "tokens_in")
        self.tokens_out += _num(e, "tokens_out")
        esc = int(_num(e, "escalations"))
        self.escalations += esc
        self.escalated_requests += esc > 0
        reason = e.get("reason")
        if e.get("accepted") is True and e["outcome"] == "accepted":
            self.accepted += 1
            by = e.get("answered_by")
            self.answered_by[_key(self.answered_by, by if isinstance(by, str) else MISSING)] += 1
        else:
            self.fail_outcomes[e["outcome"]] += 1
            self.fail_reasons[_key(self.fail_reasons, reason if isinstance(reason, str) else "unknown")] += 1
        if isinstance(reason, str) and reason.startswith("budget_"):
            self.budget_stops += 1
        if isinstance(e.get("latency_ms"), (int, float)):
            self.latency.add(_num(e, "latency_ms"))

    def as_dict(self) -> dict[str, Any]:
        n = self.requests
        failed = n - self.accepted
        return {
            "requests": n,
            "accepted": self.accepted,
            "accepted_rate": _rate(self.accepted, n),
            "accepted_by_rung": dict(self.answered_by.most_common()),
            "final_failures": {
                "count": failed,
                "rate": _rate(failed, n),
                "by_outcome": dict(self.fail_outcomes.most_common()),
                "by_reason": dict(self.fail_reasons.most_common()),
            },
            "escalated_requests": {
                "count": self.escalated_requests,
                "rate": _rate(self.escalated_requests, n),
            },
            "escalations": self.escalations,
            "budget_stops": {"count": self.budget_stops, "rate": _rate(self.budget_stops, n)},
            "tokens_in": int(self.tokens_in),
            "tokens_out": int(self.tokens_out),
            "cost_usd": _usd(self.cost),
            "cost_per_request_usd": None if n == 0 else _usd(self.cost / n),
            "cost_per_accepted_usd": None if self.accepted == 0 else _usd(self.cost / self.accepted),
            "baseline_top_cost_usd": _usd(self.baseline),
            "savings_usd": _usd(self.baseline - self.cost),
            "savings_pct": None if self.baseline == 0 else round(100 * (self.baseline - self.cost) / self.baseline, 3),
            "latency_ms": self.latency.summary(),
        }


class Stats:
    """Everything ``cascade stats`` reports, fed one event at a time with :meth:`add`."""

    def __init__(self, by: By | None = None) -> None:
        self.by = by or By()
        self.by_model = "model" in self.by.dims
        self.slices: dict[tuple[str, ...], VisitAgg] = {}
        self.group_values: dict[str, dict[str, str]] = {}
        self.total = RequestAgg()
        self.rungs: dict[str, AttemptAgg] = {}
        self.models: dict[str, AttemptAgg] = {}
        self.reasons: Counter[str] = Counter()
        self.reask_reasons: Counter[str] = Counter()
        self.groups: dict[str, RequestAgg] = {}
        self.ladder: list[str] = []
        self.attempt_events = 0
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self.calls = self.retries = 0
        self.error_kinds: Counter[str] = Counter()
        self._in_flight: dict[str, list[float]] = {}
        self.dropped_in_flight = 0

    def add(self, e: Event) -> None:
        ts = float(e["ts"])
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        if e["event"] == "attempt":
            self._add_attempt(e)
        else:
            self._add_request(e)

    def _add_attempt(self, e: Event) -> None:
        self.attempt_events += 1
        reasons = [r for r in e.get("reasons") or [] if isinstance(r, str)]
        err = e.get("error")
        if not reasons and e["outcome"] in ("error", "skipped", "escalated"):
            reasons = [str(err.get("reason") or "unknown") if isinstance(err, dict) else "unknown"]
        _slot(self.rungs, e["rung"]).add(e, reasons)
        if self.by.dims:
            self._add_slice(e, reasons)
        if self.by_model:
            model = e.get("model")
            _slot(self.models, model if isinstance(model, str) else MISSING).add(e, reasons)
        outcome = e["outcome"]
        target = self.reask_reasons if outcome == "reask" else self.reasons if outcome != "accepted" else None
        if target is not None:
            for r in reasons:
                target[_key(target, r)] += 1
        self.calls += int(_num(e, "calls"))
        self.retries += int(_num(e, "retries"))
        if outcome == "error":
            kind = err.get("kind") if isinstance(err, dict) else None
            self.error_kinds[_key(self.error_kinds, str(kind or "unknown"))] += 1
        self._remember_tokens(e)

    def _add_slice(self, e: Event, reasons: list[str]) -> None:
        rung = e["rung"] if e["rung"] in self.rungs else OTHER
        key = (rung, *(dim_value(e, d) for d in self.by.inner))
        agg = self.slices.get(key)
        if agg is None:
            if len(self.slices) >= MAX_SLICES:
                key = (rung, *(OTHER for _ in self.by.inner))
            agg = self.slices.setdefault(key, VisitAgg())
        agg.add(e["outcome"], _num(e, "cost_usd"), reasons)

    def _remember_tokens(self, e: Event) -> None:
        """Keep, per unfinished request, one call's prompt tokens (first attempt) and output tokens (last
        attempt with an answer) for the top-rung baseline."""
        calls = max(1.0, _num(e, "calls"))
        rid = e["request_id"]
        entry = self._in_flight.get(rid)
        if entry is None:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                del self._in_flight[next(iter(self._in_flight))]
                self.dropped_in_flight += 1
            entry = self._in_flight[rid] = [-1.0, -1.0]
        if entry[0] < 0 and _num(e, "tokens_in") > 0:
            entry[0] = _num(e, "tokens_in") / calls
        if _num(e, "tokens_out") > 0:
            entry[1] = _num(e, "tokens_out") / calls

    def _add_request(self, e: Event) -> None:
        entry = self._in_flight.pop(e["request_id"], None)
        per = max(1.0, _num(e, "attempts"))
        tin = entry[0] if entry and entry[0] >= 0 else _num(e, "tokens_in") / per
        tout = entry[1] if entry and entry[1] >= 0 else _num(e, "tokens_out") / per
        top = e.get("top_rung")
        baseline = 0.0
        if isinstance(top, dict):
            baseline = (tin * float(top["price_in"]) + tout * float(top["price_out"])) / 1_000_000
        self.total.add(e, baseline)
        rungs = e.get("rungs")
        if isinstance(rungs, list) and len(rungs) > len(self.ladder) and len(rungs) <= MAX_KEYS:
            self.ladder = [str(r) for r in rungs]
        keys = self.by.meta_keys
        if keys:
            meta = e.get("metadata")
            values = [scalar(meta[k]) if isinstance(meta, dict) and k in meta else MISSING for k in keys]
            key = " / ".join(values)
            if key not in self.groups and len(self.groups) >= MAX_GROUPS:
                key, values = OTHER, [OTHER] * len(keys)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = RequestAgg()
                self.group_values[key] = dict(zip(keys, values, strict=True))
            group.add(e, baseline)

    def rung_order(self) -> list[str]:
        """Rungs cheapest first: by ladder position (``rung_index``), then by the ladder list, then name."""
        pos = {name: i for i, name in enumerate(self.ladder)}

        def key(name: str) -> tuple[int, int, str]:
            idx = self.rungs[name].index
            return (idx if idx is not None else pos.get(name, 10_000), pos.get(name, 10_000), name)

        return sorted(self.rungs, key=key)

    def as_dict(self) -> dict[str, Any]:
        """The stats JSON (without the file and filter fields the CLI adds); schema in the docs."""
        out = self.total.as_dict()
        total_attempt_cost = sum(a.cost for a in self.rungs.values())
        mentions = sum(self.reasons.values())
        requests = self.total.requests
        out.update(
            {
                "attempts": self.attempt_events,
                "calls": self.calls,
                "retries": {"count": self.retries, "rate": _rate(self.retries, self.calls)},
                "errors": {
                    "count": sum(self.error_kinds.values()),
                    "rate": _rate(sum(self.error_kinds.values()), self.attempt_events),
                    "by_kind": dict(self.error_kinds.most_common()),
                },
                "baseline_method": BASELINE_METHOD,
                "latency_relative_error": self.total.latency.relative_error,
                "time_range": None if self.first_ts > self.last_ts else {"first": self.first_ts, "last": self.last_ts},
                "by_rung": {name: self.rungs[name].as_dict(total_attempt_cost) for name in self.rung_order()},
                "by_reason": {
                    r: {
                        "count": n,
                        "share": _rate(n, mentions),
                        "per_request": _rate(n, requests),
                        "reasks": self.reask_reasons.get(r, 0),
                    }
                    for r, n in self.reasons.most_common()
                },
                "by_model": {m: a.as_dict(total_attempt_cost) for m, a in sorted(self.models.items())}
                if self.by_model
                else None,
                "by": list(self.by.dims),
                "by_metadata": None
                if not self.by.meta_keys
                else {
                    "key": ",".join(self.by.meta_keys),
                    "keys": list(self.by.meta_keys),
                    "groups": {k: {"values": self.group_values[k], **g.as_dict()} for k, g in self.groups.items()},
                },
                "slices": None
                if not self.by.visit_level
                else {"by": list(self.by.dims), "unit": "visit", "rows": slice_rows(self.slices, self.by)},
                "incomplete_requests": len(self._in_flight) + self.dropped_in_flight,
            }
        )
        for r, n in self.reask_reasons.items():
            if r not in out["by_reason"]:
                out["by_reason"][r] = {
                    "count": 0,
                    "share": _rate(0, mentions),
                    "per_request": _rate(0, requests),
                    "reasks": n,
                }
        return out
