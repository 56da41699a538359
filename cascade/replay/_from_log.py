"""Refit a policy's threshold from shadowed traffic (``cascade tune --from-log LOG --policy P``).

The shadow audit (``cascade._shadow``) pairs a uniform sample (rate ``r``) of the answers accepted
below the top, on any rung, with the top rung's answer. That sample is a calibration set of live
traffic for a stricter threshold ``t'`` (one threshold for every rung, as in the policy): a request
that reached rung ``j`` still reaches it (every earlier rung scored below ``t <= t'``); if rung ``j``
still accepts (score ``>= t'``) the answer is the one the audit judged; if not, the request goes on
up: to the top rung when ``j`` is the last rung below it (so it agrees with the top), else to later
rungs whose answers the audit never saw, which the bound counts as differing (conservative). The risk
certified is the share of all requests whose answer differs from the top rung's (no human labels:
only the top rung's answers), so it also bounds the ``loss`` target (the top right and the cascade
wrong):

    risk(t') <= (A / N) * P(score >= t' and disagree, or score < t' below the last rung | accepted below the top)

with ``N`` requests and ``A`` accepted below the top counted exactly from the log, and the probability
bounded by Clopper-Pearson on the shadowed pairs. For two rungs the second term is empty and the risk
falls as ``t'`` rises, so the thresholds are tested from strict to lax at level ``delta`` (fixed
sequence, as in the fit); with more rungs it need not fall, so every threshold is tested at
``delta / thresholds`` (Bonferroni). Either way the laxest certified one is kept. Only thresholds at
least the policy's own can be judged: laxer ones would accept answers the audit never saw.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .._logs._read import BadLine, iter_lines
from ._policy import Policy

JUDGED = ("agree", "disagree")  # shadow outcomes that compare the two answers


@dataclass(frozen=True)
class Audited:
    """One shadowed request: the answering rung's calibrated score, whether it agreed with the top, and
    whether that rung is the last below the top (a request it no longer accepts goes to the top)."""

    score: float
    agree: bool
    last: bool = True


def read_audits(paths: Iterable[str], policy: Policy) -> tuple[int, int, list[Audited]]:
    """(requests, accepted below the top, shadowed pairs) of ``policy``'s rungs in the logs."""
    below_top, top = policy.models[:-1], policy.models[-1]
    requests = below = 0
    scores: dict[str, tuple[str, float]] = {}
    shadows: dict[str, bool] = {}
    bad: list[BadLine] = []
    for path in paths:
        for _, e in iter_lines(path, bad.append):
            kind = e.get("event")
            if kind == "request":
                requests += 1
                if e.get("accepted") and e.get("answered_by") in below_top:
                    below += 1
            elif kind == "attempt" and e.get("rung") in below_top and e.get("outcome") == "accepted":
                score = next((v.get("score") for v in e.get("verdicts") or [] if str(v.get("validator", "")).
                              startswith("policy_")), None)  # fmt: skip
                if isinstance(score, (int, float)) and not isinstance(score, bool):
                    scores[str(e.get("request_id"))] = (str(e.get("rung")), float(score))
            elif kind == "shadow" and e.get("rung") in below_top and e.get("top") == top and e.get("outcome") in JUDGED:
                shadows[str(e.get("request_id"))] = e.get("outcome") == "agree"
    last = below_top[-1]
    pairs = [Audited(scores[rid][1], agree, scores[rid][0] == last) for rid, agree in shadows.items() if rid in scores]
    return requests, below, pairs


def refit_from_log(
    policy: Policy, paths: Sequence[str], *, epsilon: float = 0.05, delta: float = 0.1
) -> tuple[Policy, dict[str, Any]]:
    """The policy with the laxest threshold (>= its own) whose risk is certified <= ``epsilon``; the
    top rung alone when none is (see the module doc)."""
    from ._fit import THRESHOLDS, clopper_pearson_upper

    if len(policy.rungs) < 2:
        raise ConfigError(
            f"--from-log: refitting from shadowed traffic needs a policy with a rung below the top, got {policy.models}"
        )
    if not 0 < epsilon < 1 or not 0 < delta < 1:
        raise ConfigError(f"--epsilon/--delta: expected values in (0, 1), got {epsilon!r}, {delta!r}")
    requests, below, pairs = read_audits(paths, policy)
    if not pairs:
        raise ConfigError(
            f"--from-log: no shadowed answers of {policy.models[:-1]} against {policy.models[-1]!r} in {list(paths)} "
            "(run the cascade with shadow=Shadow(rate=...) and log it)"
        )
    share = below / requests if requests else 0.0
    n = len(pairs)
    candidates = sorted((float(t) for t in THRESHOLDS if t >= policy.threshold), reverse=True)
    # two rungs: the risk falls as the threshold rises, so fixed-sequence testing from strict to lax;
    # more: it need not (a stricter threshold sends more to rungs the audit never saw), so Bonferroni
    fixed = all(p.last for p in pairs)
    level = delta if fixed else delta / len(candidates)
    chosen: tuple[float, float, int] | None = None  # threshold, bound, disagreements
    for t in candidates:
        k = sum(1 for p in pairs if (p.score >= t and not p.agree) or (p.score < t and not p.last))
        bound = share * clopper_pearson_upper(k, n, level)
        if bound > epsilon:
            if fixed:
                break
            continue
        chosen = (t, bound, k)
    new = copy.deepcopy(policy)
    info: dict[str, Any] = {
        "source": "shadow audit",
        "logs": list(paths),
        "requests": requests,
        "accepted_below_top": below,
        "shadowed": n,
        "disagreed": sum(1 for p in pairs if not p.agree),
        "target": "differs from the top rung (bounds the loss target)",
    }
    if chosen is None:
        new.rungs = [policy.rungs[-1]]
        new.threshold = 1.0
        info.update(certified_ok=False, risk_bound=None, why="no threshold at least the policy's own is certified")
    else:
        t, bound, k = chosen
        new.threshold = t
        kept = sum(1 for p in pairs if p.score >= t) / n
        info.update(
            certified_ok=True,
            risk_bound=bound,
            risk=share * k / n,
            still_accepted_share=kept,
            why=f"threshold {policy.threshold:.4f} -> {t:.4f}",
        )
    new.target, new.epsilon, new.delta, new.method = "agreement", epsilon, delta, "shadow-refit"
    new.fit = {**policy.fit, "refit": info, "split": "traffic", "n": n, **{k: info[k] for k in ("risk_bound",)},
               "certified_ok": info["certified_ok"]}  # fmt: skip
    return new, info
