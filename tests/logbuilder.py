"""Build schema-v1 escalation logs by hand (attempt events, then the request event), for stats tests;
``realistic_log`` builds the 2,000-request, two-hour log with faults and a drift that the operator tests read."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

LADDER = {  # name: (model, price_in, price_out) in USD per 1M tokens
    "small": ("small-1", 0.1, 0.4),
    "medium": ("medium-1", 1.0, 4.0),
    "large": ("large-1", 10.0, 30.0),
}
RUNGS = list(LADDER)


def cost(rung: str, tokens_in: int, tokens_out: int) -> float:
    _, pin, pout = LADDER[rung]
    return (tokens_in * pin + tokens_out * pout) / 1_000_000


class LogBuilder:
    """``req(...)`` appends one request's events; ``write(path)`` writes them as JSONL (``.gz`` gzipped)."""

    def __init__(self, start: float = 1_764_115_200.0) -> None:
        self.events: list[dict[str, Any]] = []
        self.ts = start
        self.n = 0

    def req(
        self,
        attempts: list[dict[str, Any]],
        *,
        metadata: dict[str, Any] | None = None,
        latency_ms: float | None = None,
        request_id: str | None = None,
        gap: float = 1.0,
        emit_request: bool = True,
    ) -> str:
        """Each attempt: ``{rung, outcome, reasons=[], tokens_in=100, tokens_out=50, latency_ms=10,
        calls=1, retries=0, error=None}``; cost is computed from LADDER unless ``cost_usd`` is given."""
        self.n += 1
        rid = request_id or f"r{self.n}"
        meta = metadata or {}
        total_cost = 0.0
        tin = tout = 0
        accepted_by = None
        for i, a in enumerate(attempts):
            rung = a["rung"]
            model, pin, pout = LADDER[rung]
            t_in, t_out = a.get("tokens_in", 100), a.get("tokens_out", 50)
            c = a.get("cost_usd", cost(rung, t_in, t_out))
            total_cost += c
            tin += t_in
            tout += t_out
            self.ts += 0.01
            if a["outcome"] == "accepted":
                accepted_by = rung
            self.events.append(
                {
                    "event": "attempt", "v": 1, "ts": self.ts, "request_id": rid, "attempt": i,
                    "rung": rung, "rung_index": RUNGS.index(rung), "model": model,
                    "outcome": a["outcome"], "reasons": a.get("reasons", []), "verdicts": a.get("verdicts", []),
                    "tokens_in": t_in, "tokens_out": t_out, "cost_usd": c,
                    "latency_ms": a.get("latency_ms", 10.0), "calls": a.get("calls", 1),
                    "retries": a.get("retries", 0), "price_in": pin, "price_out": pout,
                    "error": a.get("error"), "metadata": meta,
                }
            )  # fmt: skip
        rungs_tried = len(dict.fromkeys(a["rung"] for a in attempts))
        last_reason = next((a["reasons"][-1] for a in reversed(attempts) if a.get("reasons")), None)
        last_error = (attempts[-1].get("error") or {}) if attempts else {}
        caller = attempts and attempts[-1]["outcome"] == "error" and last_error.get("kind") == "caller"
        outcome = "accepted" if accepted_by else "error" if caller else "exhausted"
        self.ts += 0.01
        if emit_request:
            top_model, top_in, top_out = LADDER[RUNGS[-1]]
            self.events.append(
                {
                    "event": "request", "v": 1, "ts": self.ts, "request_id": rid, "outcome": outcome,
                    "accepted": accepted_by is not None, "answered_by": accepted_by,
                    "escalations": max(0, rungs_tried - 1), "attempts": len(attempts),
                    "tokens_in": tin, "tokens_out": tout, "cost_usd": total_cost,
                    "latency_ms": latency_ms if latency_ms is not None
                    else sum(a.get("latency_ms", 10.0) for a in attempts),
                    "reason": None if accepted_by else last_reason, "error": None, "budget_usd": None,
                    "top_rung": {"name": RUNGS[-1], "model": top_model,
                                 "price_in": top_in, "price_out": top_out},
                    "rungs": RUNGS, "metadata": meta,
                }
            )  # fmt: skip
        self.ts += gap
        return rid

    def lines(self) -> list[str]:
        return [json.dumps(e) for e in self.events]

    def write(self, path: Path, extra_lines: list[str] | None = None) -> Path:
        text = "\n".join(self.lines() + (extra_lines or [])) + "\n"
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path


def acc(rung: str, **kw: Any) -> dict[str, Any]:
    return {"rung": rung, "outcome": "accepted", **kw}


def esc(rung: str, *reasons: str, **kw: Any) -> dict[str, Any]:
    return {"rung": rung, "outcome": "escalated", "reasons": list(reasons), **kw}


def reask(rung: str, *reasons: str, **kw: Any) -> dict[str, Any]:
    return {"rung": rung, "outcome": "reask", "reasons": list(reasons), **kw}


def err(rung: str, reason: str = "server_error", kind: str = "rung_fatal", **kw: Any) -> dict[str, Any]:
    e = {"kind": kind, "reason": reason, "status": 500, "message": "boom"}
    return {
        "rung": rung,
        "outcome": "error",
        "reasons": [reason],
        "error": e,
        "tokens_in": 0,
        "tokens_out": 0,
        **kw,
    }


TASKS = {"chat": 0.4, "extract": 0.35, "classify": 0.25}
"""Share of requests per ``metadata.task`` in :func:`realistic_log`."""


def _confidence_verdict(score: float, threshold: float = 0.7) -> dict[str, Any]:
    passed = score >= threshold
    return {"validator": "confidence", "passed": passed, "reason": "ok" if passed else "low_confidence",
            "score": round(score, 4), "detail": ""}  # fmt: skip


def _fault(rng: random.Random, rung: str) -> dict[str, Any] | None:
    """An injected provider fault on this attempt (429 after retries, a 5xx, a timeout), or None."""
    x = rng.random()
    if x < 0.02:
        e429 = {"kind": "rung_fatal", "reason": "rate_limited", "status": 429, "message": "slow down"}
        return err(rung, "rate_limited", calls=3, retries=2, latency_ms=rng.uniform(800, 2500), error=e429)
    if x < 0.03:
        return err(rung, "server_error", calls=2, retries=1, latency_ms=rng.uniform(50, 300))
    if x < 0.04:
        slow = {"kind": "rung_fatal", "reason": "timeout", "status": None, "message": "read timeout"}
        return err(rung, "timeout", calls=1, latency_ms=30_000.0, error=slow)
    return None


def realistic_log(
    seed: int = 2, n: int = 2000, start: float = 1_764_115_200.0, hours: float = 2.0, drift_task: str = "chat"
) -> LogBuilder:
    """``n`` requests over ``hours`` on the small/medium/large ladder, about 60% accepted by ``small``,
    with injected 429/5xx/timeout faults, a confidence validator's scores in every verdict, and a drift in
    the second half: ``drift_task`` requests escalate from ``small`` far more often (their confidence
    drops and their JSON breaks); the other tasks stay as they were."""
    rng = random.Random(seed)
    b = LogBuilder(start)
    span = hours * 3600
    names, weights = list(TASKS), list(TASKS.values())
    for i in range(n):
        b.ts = start + span * (i + rng.random() * 0.5) / n
        task = rng.choices(names, weights)[0]
        drifted = task == drift_task and i >= n // 2
        tin = {"chat": 600, "extract": 1500, "classify": 300}[task] + rng.randint(-100, 100)
        attempts: list[dict[str, Any]] = []
        for rung in RUNGS:
            tout = {"small": 120, "medium": 150, "large": 180}[rung] + rng.randint(-40, 40)
            lat = {"small": 180.0, "medium": 600.0, "large": 1800.0}[rung] * rng.uniform(0.6, 1.8)
            fault = _fault(rng, rung)
            if fault is not None:
                attempts.append(fault)
                continue
            if rung == "small":
                mean = 0.62 if drifted else 0.78
                schema_broken = rng.random() < (0.25 if drifted else 0.08)
            else:
                mean = 0.84 if rung == "medium" else 0.93
                schema_broken = rng.random() < (0.05 if rung == "medium" else 0.02)
            score = min(0.999, max(0.01, rng.gauss(mean, 0.1)))
            verdicts = [_confidence_verdict(score)]
            kw = {"tokens_in": tin, "tokens_out": tout, "latency_ms": lat, "verdicts": verdicts}
            if schema_broken:
                v = {"validator": "schema", "passed": False, "reason": "schema_invalid", "score": None,
                     "detail": "missing field"}  # fmt: skip
                attempts.append(esc(rung, "schema_invalid", **{**kw, "verdicts": [v, *verdicts]}))
            elif score < 0.7:
                attempts.append(esc(rung, "low_confidence", **kw))
            else:
                attempts.append(acc(rung, **kw))
                break
        b.req(attempts, metadata={"task": task, "tenant": f"t{rng.randint(1, 3)}"}, gap=0.0)
    return b
