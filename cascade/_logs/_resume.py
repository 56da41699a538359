"""Resuming a batch from its own escalation log, so a crash (even SIGKILL) costs nothing twice.

``await cascade.map(items, resume_from="batch.jsonl")`` gives each item a stable request id (its own
``request_id`` when the item is a dict that has one, else ``item-<sha256 of the item>``, with ``-2``,
``-3``... for repeats of an identical item), reads the log, and does not run items whose request already
ended there (a ``request`` event with outcome ``accepted`` or ``exhausted``, or ``error`` for any reason
but ``cancelled``). Their results are rebuilt from the log with ``resumed=True``: outcome, rung, costs
and attempts; ``output`` only if the log holds it (``log_content="full"``). Items that were in flight
when the process died have no request event and are run again: at most ``concurrency`` of them.
Point ``log=`` at the same file to keep one complete record across runs. Files an external tool
rotated the log into (``batch.jsonl.1``, ``batch.jsonl.2.gz``, ``batch.jsonl-20261201``) are read too.
Every ``request`` event carries the fingerprint of the ladder and checks that decided it; answers decided
by another ladder are refused unless ``resume_changed`` says what to do with them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import ConfigError, RequestError
from .._events import ResumeEvent, resume_event
from .._result import Attempt, CascadeResult
from .._types import Verdict
from ._read import LogRead, iter_lines, log_files

FINAL = frozenset({"accepted", "exhausted", "error"})
ResumeChanged = Literal["refuse", "rerun", "reuse"]


class LogWarning(RuntimeWarning):
    """A log being resumed from has lines that could not be read (e.g. torn by a crash)."""


def item_id(item: Any) -> str:
    """A request id that is the same for the same item in any process: a hash of its canonical JSON."""
    try:
        canon = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"map item: cannot derive a stable request_id from {item!r:.80} ({exc})") from None
    return "item-" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:32]


@dataclass
class Resume:
    """What a previous run of the batch finished, and the ids given to this run's items."""

    path: str
    done: dict[str, CascadeResult] = field(default_factory=dict)
    log: LogRead = field(default_factory=LogRead)
    _seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], fingerprint: str | None = None, changed: ResumeChanged = "refuse"
    ) -> Resume:
        """Read ``path`` and the files a rotation moved it to (a missing file is an empty log: a first
        run). Unreadable lines are skipped and reported with a :class:`LogWarning`.

        With ``fingerprint`` (the current ladder's, ``cascade._fingerprint``), requests that an earlier
        run finished with another ladder or other checks (or with no fingerprint in the log) are not
        silently reused: ``changed="refuse"`` raises a ConfigError, ``"rerun"`` runs them again,
        ``"reuse"`` takes their answers anyway."""
        if changed not in ("refuse", "rerun", "reuse"):
            raise ConfigError(f"resume_changed: expected 'refuse', 'rerun' or 'reuse', got {changed!r}")
        out = cls(os.fspath(path))
        attempts: dict[str, list[dict[str, Any]]] = {}
        stale: dict[str, str | None] = {}
        for name in log_files(out.path):
            for _, event in iter_lines(name, out.log.bad_lines.append):
                rid = event.get("request_id")
                if not isinstance(rid, str):
                    continue
                kind = event["event"]
                if kind == "attempt":
                    attempts.setdefault(rid, []).append(event)
                elif kind == "request" and _finished(event):
                    out.done[rid] = _rebuild(event, attempts.pop(rid, []))
                    seen = event.get("fingerprint")
                    if fingerprint is not None and seen != fingerprint:
                        stale[rid] = seen if isinstance(seen, str) else None
                    else:
                        stale.pop(rid, None)
                elif kind == "request":
                    attempts.pop(rid, None)  # cancelled: run again; forget its attempts
        if out.log.bad_lines:
            warnings.warn(f"{out.path}: {out.log.summary()}", LogWarning, stacklevel=3)
        if stale and changed == "refuse":
            olds = sorted({f or "none (an older version's log)" for f in stale.values()})
            raise ConfigError(
                f"resume_from: {len(stale)} of {len(out.done)} finished requests in {out.path!r} were decided by "
                f"another ladder or other checks (fingerprint {', '.join(olds[:3])}; now {fingerprint}). Pass "
                "resume_changed='rerun' to run them again, or 'reuse' to keep their answers"
            )
        if changed == "rerun":
            for rid in stale:
                del out.done[rid]
        return out

    def prepare(self, item: Any) -> tuple[Any, CascadeResult | None]:
        """The item with its stable ``request_id`` set, and its earlier result if it already ended.
        Call in input order (repeats of an identical item are numbered by their order)."""
        given = item.get("request_id") if isinstance(item, Mapping) else None
        if given is not None and (not isinstance(given, str) or not given):
            message = f"RequestError: request_id: expected a non-empty string, got {given!r:.80}"
            return item, CascadeResult(request_id=uuid.uuid4().hex, outcome="error", error=message)
        if isinstance(given, str):
            rid = given
        else:
            try:
                base = item_id(item)
            except RequestError as exc:  # one odd item must not stop the batch
                return item, CascadeResult(request_id=uuid.uuid4().hex, outcome="error", error=f"RequestError: {exc}")
            n = self._seen[base] = self._seen.get(base, 0) + 1
            rid = base if n == 1 else f"{base}-{n}"
            item = {**item, "request_id": rid} if isinstance(item, Mapping) else {"messages": item, "request_id": rid}
        return item, self.done.get(rid)

    def summary_event(self) -> ResumeEvent:
        """The ``resume`` event written to the log when a resumed batch starts."""
        return resume_event(self.path, len(self.done), [b.as_dict() for b in self.log.bad_lines])


def _finished(event: Mapping[str, Any]) -> bool:
    outcome = event.get("outcome")
    if not isinstance(outcome, str) or outcome not in FINAL:  # a foreign or damaged line: not finished
        return False
    return not (outcome == "error" and event.get("reason") == "cancelled")


def _rebuild(request: Mapping[str, Any], attempts: list[dict[str, Any]]) -> CascadeResult:
    """A CascadeResult from logged events; fields the log does not hold stay at their defaults."""
    result = CascadeResult(
        request_id=str(request["request_id"]),
        output=request.get("output") if isinstance(request.get("output"), str) else None,
        answered_by=_str(request.get("answered_by")),
        accepted=request.get("accepted") is True,
        outcome=request["outcome"],
        escalations=_int(request.get("escalations")),
        cost_usd=_float(request.get("cost_usd")),
        latency_ms=_float(request.get("latency_ms")),
        error=_str(request.get("error")),
        metadata=dict(request["metadata"]) if isinstance(request.get("metadata"), dict) else {},
        resumed=True,
    )
    for i, e in enumerate(sorted(attempts, key=lambda e: _int(e.get("attempt")))):
        result.attempts.append(
            Attempt(
                index=i,
                rung=str(e.get("rung", "")),
                model=str(e.get("model", "")),
                outcome=e.get("outcome", "error"),
                reasons=[str(r) for r in _list(e.get("reasons"))],
                verdicts=[_verdict(v) for v in _list(e.get("verdicts")) if isinstance(v, dict)],
                tokens_in=_int(e.get("tokens_in")),
                tokens_out=_int(e.get("tokens_out")),
                cost_usd=_float(e.get("cost_usd")),
                latency_ms=_float(e.get("latency_ms")),
                calls=_int(e.get("calls")),
                retries=_int(e.get("retries")),
                error=e.get("error") if isinstance(e.get("error"), dict) else None,
                output=e.get("output") if isinstance(e.get("output"), str) else None,
            )
        )
    return result


def _verdict(v: Mapping[str, Any]) -> Verdict:
    score = v.get("score")
    return Verdict(
        passed=v.get("passed") is True,
        reason=str(v.get("reason", "")),
        score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        detail=str(v.get("detail", "")),
        validator=str(v.get("validator", "")),
    )


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0.0
    try:
        return float(v)
    except OverflowError:
        return 0.0
