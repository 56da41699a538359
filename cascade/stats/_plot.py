"""``--plot out.png``: escalation rate over time per series, and where the money went (``[plot]`` extra).

The time axis follows the report's ``timeline`` (see :mod:`._timeline`): buckets sized to the data, a
95% band around each rate, a line only between adjacent busy buckets, and one panel per segment of the
log, so two runs a day apart are two panels side by side rather than two specks joined by a line.
``--by`` picks the series (``timeline_by``; per rung without it), ``--compare`` shades the two windows
and prints where the drift came from.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ._timeline import runs

MAX_PANELS = 6


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=timezone.utc)


def series_title(tl: dict[str, Any]) -> str:
    if tl["unit"] == "request":
        return "Escalated requests over time, by " + ", ".join(tl["dims"])
    return "Escalation rate per visit over time, by " + ", ".join(tl["dims"])


def plot(data: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'cascade-router[plot]'") from None

    tl = (
        data.get("timeline_by")
        or data.get("timeline")
        or {"segments": [], "series": [], "bucket_s": None, "unit": "visit", "dims": ["rung"]}
    )
    segments = tl["segments"] if 0 < len(tl["segments"]) <= MAX_PANELS else []
    if not segments and tl["series"]:
        ts = [p["t"] for s in tl["series"] for p in s["points"]]
        segments = [[min(ts), max(ts) + tl["bucket_s"]]]
    panels = max(1, len(segments))
    spans = [max(b - a, 1.0) for a, b in segments] or [1.0]
    ratios = [max(s / sum(spans), 0.15) for s in spans]
    cmp = data.get("compare")
    notes = [e["summary"] for e in (cmp or {}).get("explanations", []) if e["flagged"]][:3]
    fig = plt.figure(figsize=(11, 8.5 + 0.35 * len(notes)))
    grid = fig.add_gridspec(2, panels, height_ratios=[3, 2], width_ratios=ratios, wspace=0.12)
    axes = [fig.add_subplot(grid[0, i]) for i in range(panels)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def x(t: float) -> float:
        return float(mdates.date2num(_dt(t)))  # type: ignore[no-untyped-call, unused-ignore]

    width = tl["bucket_s"] or 1.0
    for k, s in enumerate(tl["series"]):
        color = colors[k % len(colors)]
        for i, ax in enumerate(axes):
            lo_t, hi_t = segments[i] if segments else (float("-inf"), float("inf"))
            pts = [p for p in s["points"] if lo_t <= p["t"] < hi_t]
            for j, run in enumerate(runs(pts, width)):
                xs = [x(p["t"] + width / 2) for p in run]
                ax.fill_between(
                    xs, [100 * p["lo"] for p in run], [100 * p["hi"] for p in run], color=color, alpha=0.15, linewidth=0
                )
                first = i == 0 and j == 0
                ax.plot(xs, [100 * p["rate"] for p in run], marker="o", markersize=2.5, linewidth=1.5, color=color,
                        label=f"{s['label']} (n={s['n']:,})" if first else None)  # fmt: skip
    if cmp and cmp.get("previous") and cmp.get("current"):
        for ax in axes:
            for w, color, name in (
                (cmp["previous"], "0.5", "previous window"),
                (cmp["current"], "tab:orange", "current window"),
            ):
                ax.axvspan(x(w["start"]), x(w["end"]), color=color, alpha=0.08, label=name if ax is axes[0] else None)
    for i, ax in enumerate(axes):
        if segments:
            ax.set_xlim(x(segments[i][0]), x(segments[i][1]))
        locator = mdates.AutoDateLocator(maxticks=max(3, int(8 * ratios[i])))  # type: ignore[no-untyped-call, unused-ignore]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call, unused-ignore]
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        if i > 0:
            ax.tick_params(labelleft=False)
            ax.spines["left"].set_linestyle((0, (2, 2)))
    axes[0].set_ylabel("escalation rate (%), 95% band")
    bucket = "-" if not tl["bucket_s"] else _duration(tl["bucket_s"])
    axes[0].set_title(f"{series_title(tl)} ({data['requests']:,} requests, {bucket} buckets)", loc="left")
    if tl["series"]:
        axes[0].legend(loc="upper left", fontsize=8)

    ax2 = fig.add_subplot(grid[1, :])
    rungs = list(data["by_rung"])
    bottom = 0.0
    for name in rungs:
        cost = data["by_rung"][name]["cost_usd"]
        ax2.barh(["cascade"], [cost], left=[bottom], label=f"{name}: ${cost:,.4f}")
        bottom += cost
    baseline = data["baseline_top_cost_usd"]
    ax2.barh(["top rung only\n(estimate)"], [baseline], color="0.6", label=f"top rung only: ${baseline:,.4f}")
    savings = data["savings_pct"]
    ax2.set_title(
        "Cost breakdown" + ("" if savings is None else f" (savings {savings:.1f}% vs top rung only)"), loc="left"
    )
    ax2.set_xlabel("USD")
    ax2.legend(loc="lower right", fontsize=9)
    ax2.grid(axis="x", alpha=0.3)
    if notes:
        fig.text(0.01, 0.01, "\n".join("Drift: " + n for n in notes), fontsize=8, va="bottom", wrap=True)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.07 + 0.03 * len(notes), hspace=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
