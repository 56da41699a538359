"""The escalation log's events: ONE typed definition of every kind, and the builders the engine uses.

Everything that writes or reads the log derives from the ``TypedDict`` classes below: the engine builds
its events through them (mypy checks every field), :func:`event_json_schema` turns them into the
published JSON Schema (``cascade/event-schema.json``, written by ``cascade schema``, checked by a test
against this module), and the
docs' event reference is generated from them. ``v`` is :data:`SCHEMA_VERSION` on every event.

Every request produces one ``attempt`` event per attempt and then exactly one ``request`` event;
``breaker``, ``idle`` and ``resume`` events record state changes. ``ts`` (unix seconds) is added by the
default processor (``add_timestamp``). Readers must ignore event kinds and fields they do not know, and
skip (and report) lines that are not JSON objects: a crash can tear the last line
(``cascade._logs._read``). A new kind is a new ``TypedDict`` here, added to :data:`EVENT_TYPES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

SCHEMA_VERSION = 1
Event = dict[str, Any]
"""An event as it travels through processors and sinks: a plain dict (as in structlog)."""

AttemptOutcome = Literal["accepted", "escalated", "reask", "error", "skipped"]
RequestOutcome = Literal["accepted", "exhausted", "error"]


class VerdictRecord(TypedDict):
    """One check's verdict on one answer."""

    validator: str
    passed: bool
    reason: str
    score: float | None
    detail: str


class ErrorRecord(TypedDict):
    """Why a call failed or a rung was skipped: ``kind`` is ``transient``, ``rung_fatal``, ``caller``,
    ``budget`` or the skipping gate's kind (``breaker``, ``idle``...)."""

    kind: str
    reason: str
    status: int | None
    message: str


class RungRecord(TypedDict):
    """A rung's identity and prices (USD per million tokens)."""

    name: str
    model: str
    price_in: float
    price_out: float


class AttemptEvent(TypedDict):
    """One try of one rung: its first call, retries, samples and extra asks. ``calls`` counts the HTTP
    calls made; ``output`` (``log_content="full"``) or ``output_hash`` (``"hash"``) carry the answer.
    ``charged_at_bound``: a call was charged its reserved bound (sent and never answered, or a cost that
    was not a number); ``budget_overrun``: a call cost more than its reservation. ``log_lost`` (on any
    line): lines the log could not take since the previous line that was written."""

    event: Literal["attempt"]
    v: int
    ts: NotRequired[float]
    request_id: str
    attempt: int
    rung: str
    rung_index: int
    model: str
    outcome: AttemptOutcome
    reasons: list[str]
    verdicts: list[VerdictRecord]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    calls: int
    retries: int
    price_in: float
    price_out: float
    price_source: NotRequired[str]
    error: ErrorRecord | None
    metadata: dict[str, Any]
    charged_at_bound: NotRequired[bool]
    budget_overrun: NotRequired[bool]
    output: NotRequired[str | None]
    output_hash: NotRequired[str]
    log_lost: NotRequired[int]


class RequestEvent(TypedDict):
    """The end of one request. ``reason`` is the last failure's reason code (null when accepted);
    ``rungs`` are the ladder's names, cheapest first; ``prompt``/``output`` or their ``_hash`` with
    content logging. ``budget_overrun``: some call cost more than reserved, accepted or not;
    ``fingerprint``: the ladder and checks that decided (``cascade._fingerprint``), compared on resume."""

    event: Literal["request"]
    v: int
    ts: NotRequired[float]
    request_id: str
    outcome: RequestOutcome
    accepted: bool
    answered_by: str | None
    escalations: int
    attempts: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    reason: str | None
    error: str | None
    budget_usd: float | None
    top_rung: RungRecord
    rungs: list[str]
    metadata: dict[str, Any]
    budget_overrun: NotRequired[bool]
    fingerprint: NotRequired[str]
    prompt: NotRequired[Any]
    prompt_hash: NotRequired[str]
    output: NotRequired[str | None]
    output_hash: NotRequired[str]
    log_lost: NotRequired[int]


_BreakerState = Literal["closed", "open", "half_open"]
BreakerEvent = TypedDict(  # functional form: "from" is a Python keyword
    "BreakerEvent",
    {
        "event": Literal["breaker"],
        "v": int,
        "ts": NotRequired[float],
        "rung": str,
        "from": _BreakerState,
        "to": _BreakerState,
        "reason": str,
        "failures": int,
        "cooldown_s": float,
    },
)
"""A rung's circuit changed state. ``reason`` is the failure that opened it, ``cooldown_elapsed`` or
``probe_succeeded``. While open, the rung's attempts are ``skipped`` with ``rung_cooling_down``."""


class IdleEvent(TypedDict):
    """A rung below the top started (``skipping``, reason ``no_answer_accepted``) or stopped
    (``active``, reason ``probe_accepted``) being skipped for accepting nothing (``SkipIdle``)."""

    event: Literal["idle"]
    v: int
    ts: NotRequired[float]
    rung: str
    to: Literal["skipping", "active"]
    reason: str
    misses: int
    probe_every: int


class BadLineRecord(TypedDict):
    """A log line a reader skipped: ``file``, 1-based ``line``, why (``error``), whether it is a torn last line."""

    file: str
    line: int
    error: str
    torn: bool


class ResumeEvent(TypedDict):
    """A batch resumed from an earlier run's log: ``done`` requests found finished there."""

    event: Literal["resume"]
    v: int
    ts: NotRequired[float]
    path: str
    done: int
    bad_lines: list[BadLineRecord]


EVENT_TYPES: Mapping[str, type[Any]] = {
    "attempt": AttemptEvent,
    "request": RequestEvent,
    "breaker": BreakerEvent,
    "idle": IdleEvent,
    "resume": ResumeEvent,
}
"""Every event kind the library writes, by its ``event`` field."""


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of one log line (any known kind), derived from the definitions above."""
    from pydantic import TypeAdapter

    defs: dict[str, Any] = {}
    variants = []
    for cls in EVENT_TYPES.values():
        schema = TypeAdapter(cls).json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        schema["additionalProperties"] = True  # readers ignore fields they do not know
        defs[cls.__name__] = schema
        variants.append({"$ref": f"#/$defs/{cls.__name__}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cascade-router log event",
        "description": f"One line of a cascade-router JSONL log, schema version {SCHEMA_VERSION}.",
        "oneOf": variants,
        "$defs": defs,
    }


# ---------------------------------------------------------------------------------------- builders


def verdict_record(validator: str, passed: bool, reason: str, score: float | None, detail: str) -> VerdictRecord:
    return {"validator": validator, "passed": passed, "reason": reason, "score": score, "detail": detail}


def rung_record(name: str, model: str, price_in: float, price_out: float) -> RungRecord:
    return {"name": name, "model": model, "price_in": price_in, "price_out": price_out}


def breaker_event(
    rung: str, from_state: _BreakerState, to: _BreakerState, reason: str, failures: int, cooldown_s: float
) -> BreakerEvent:
    return {
        "event": "breaker",
        "v": SCHEMA_VERSION,
        "rung": rung,
        "from": from_state,
        "to": to,
        "reason": reason,
        "failures": failures,
        "cooldown_s": cooldown_s,
    }


def idle_event(rung: str, to: Literal["skipping", "active"], reason: str, misses: int, probe_every: int) -> IdleEvent:
    return {
        "event": "idle",
        "v": SCHEMA_VERSION,
        "rung": rung,
        "to": to,
        "reason": reason,
        "misses": misses,
        "probe_every": probe_every,
    }


def resume_event(path: str, done: int, bad_lines: Sequence[BadLineRecord]) -> ResumeEvent:
    return {"event": "resume", "v": SCHEMA_VERSION, "path": path, "done": done, "bad_lines": list(bad_lines)}
