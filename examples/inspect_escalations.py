"""Read escalation logs to tune a ladder: how often each rung escalates, why, and what to change.

    python examples/inspect_escalations.py LOG [LOG ...]   # one or many JSONL logs (.gz too)

Produce a log first, for example with `make demo` (it prints the path of its log) or by running any
cascade with `log="escalations.jsonl"`. The figures come from `cascade.stats`, the same code as the
`cascade stats` command; this script adds the tuning hints a person would draw from them.
"""

from __future__ import annotations

import sys
from typing import Any

from cascade.stats import LogFileError, build_report

LOW_ACCEPTANCE = 0.10  # a rung accepting less than this mostly adds cost and latency
HIGH_RETRY_RATE = 0.05  # retries on more than this share of calls: rate limits or an unhealthy endpoint


def hints(report: dict[str, Any]) -> list[str]:
    """What a person tuning the ladder would take from the figures."""
    out: list[str] = []
    rungs = sorted(report["by_rung"].items(), key=lambda kv: kv[1]["index"] if kv[1]["index"] is not None else 99)
    for position, (name, rung) in enumerate(rungs):
        rate = rung["accepted_rate"]
        last = position == len(rungs) - 1
        if not last and rate is not None and rung["reached"] >= 20 and rate < LOW_ACCEPTANCE:
            out.append(
                f"rung {name!r} accepts only {rate:.0%} of the {rung['reached']} requests it sees: "
                f"it costs ${rung['cost_usd']:.6f} for little; try removing it or loosening its checks"
            )
        if rung["retry_rate"] is not None and rung["retry_rate"] > HIGH_RETRY_RATE:
            out.append(f"rung {name!r} retries {rung['retry_rate']:.0%} of its calls: check rate limits and health")
        reasons: dict[str, int] = rung["reasons"]
        if reasons and not last:
            # an attempt can carry several reasons, and a skipped one (rung_idle) is no escalation: a share of
            # the reasons logged, not of the escalations, so it never passes 100%
            top_reason, count = max(reasons.items(), key=lambda kv: kv[1])
            share = count / sum(reasons.values())
            out.append(
                f"rung {name!r} passes requests on mostly for {top_reason!r} "
                f"({count} of the {sum(reasons.values())} reasons logged for it, {share:.0%})"
            )
    failures = report.get("final_failures") or {}
    if isinstance(failures, dict) and failures.get("count"):
        out.append(f"{failures['count']} request(s) were accepted by no rung: read their reasons before tightening")
    return out


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    try:
        report = build_report(paths).data
    except LogFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report["empty"]:
        print("the log holds no cascade events")
        return 0
    print(f"{report['requests']} requests, ${report['cost_usd']:.6f} spent")
    if report.get("savings_pct") is not None:
        print(
            f"estimated top-rung-only cost ${report['baseline_top_cost_usd']:.6f}: "
            f"{report['savings_pct']:.1f}% saved (estimate: logged tokens priced at the top rung)"
        )
    print(f"{'rung':<12}{'reached':>9}{'accepted':>10}{'esc. rate':>11}{'cost $':>12}  reasons")
    for name, rung in report["by_rung"].items():
        rate = rung["escalation_rate"]
        print(
            f"{name:<12}{rung['reached']:>9}{rung['accepted']:>10}"
            f"{'-' if rate is None else f'{rate:.0%}':>11}{rung['cost_usd']:>12.6f}  {rung['reasons']}"
        )
    for line in hints(report):
        print("hint:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
