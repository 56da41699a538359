"""Re-ask messages: tell the model what was wrong with its answer so it can fix it (Instructor style)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .._types import Message
from ._base import Verdict

_HINTS = {
    "json_unparseable": "Reply with valid JSON only, without code fences or any other text.",
    "schema_invalid": "Reply with JSON that matches the required schema exactly.",
    "label_not_allowed": "Reply with one of the allowed labels only.",
    "regex_mismatch": "Reply in the required format only.",
}


def _failed(verdicts: Verdict | Iterable[Verdict]) -> list[Verdict]:
    items = [verdicts] if isinstance(verdicts, Verdict) else list(verdicts)
    return [leaf for v in items for leaf in v.leaves() if not leaf.passed]


def feedback_message(verdicts: Verdict | Iterable[Verdict], *, max_chars: int = 1500) -> dict[str, Any]:
    """A user message listing what each failed check found, to send after the rejected answer.

    Takes a verdict (composites are opened into their leaves) or several; passing ones are skipped.
    """
    failed = _failed(verdicts)
    if not failed:
        raise ValueError("feedback_message: no failed verdict to report (all checks passed)")
    lines = []
    for v in failed:
        who = f" ({v.validator})" if v.validator else ""
        lines.append(f"- {v.reason}{who}: {v.detail}" if v.detail else f"- {v.reason}{who}")
    hints = [_HINTS[r] for r in dict.fromkeys(v.reason for v in failed) if r in _HINTS]
    body = "\n".join(lines)
    if len(body) > max_chars:
        body = body[: max_chars - 3] + "..."
    content = (
        "Your previous answer was not accepted:\n"
        + body
        + "\n"
        + " ".join([*hints, "Answer again, fixing these problems."])
    )
    return {"role": "user", "content": content}


def reask_messages(messages: Sequence[Message], answer: str, verdicts: Verdict | Iterable[Verdict]) -> list[Message]:
    """The conversation for a re-ask: the original messages, the rejected answer, the feedback."""
    return [*messages, {"role": "assistant", "content": answer}, feedback_message(verdicts)]
