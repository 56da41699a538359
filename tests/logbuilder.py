"""Build schema-v1 escalation logs by hand (attempt events, then the request event), for stats tests."""

from __future__ import annotations

import gzip
import json
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
                    "outcome": a["outcome"], "reasons": a.get("reasons", []), "verdicts": [],
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
