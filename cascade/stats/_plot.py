"""``--plot out.png``: escalation rate over time per rung, and where the money went (``[plot]`` extra)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ._report import Series


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def plot(data: dict[str, Any], series: Series | None, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'cascade-router[plot]'") from None

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8.5), gridspec_kw={"height_ratios": [3, 2]})
    rungs = list(data["by_rung"])
    if series is not None:
        times = [datetime.fromtimestamp(t, tz=timezone.utc) for t in series.times()]
        for name in rungs:
            reached, left = series.reached.get(name), series.left.get(name)
            if not reached or not left:
                continue
            xs = [t for t, n in zip(times, reached, strict=False) if n]
            ys = [100 * lft / n for lft, n in zip(left, reached, strict=False) if n]
            ax1.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=f"{name} (n={sum(reached):,})")
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call, unused-ignore]
        ax1.xaxis.set_major_locator(locator)
        concise = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call, unused-ignore]
        ax1.xaxis.set_major_formatter(concise)  # labels fit spans from seconds to years
    ax1.set_ylim(-2, 102)
    ax1.set_ylabel("escalation rate (%)")
    ax1.set_xlabel("time (UTC)")
    ax1.set_title(f"Escalation rate per rung over time ({data['requests']:,} requests)")
    ax1.grid(alpha=0.3)
    if rungs:
        ax1.legend(loc="upper left", fontsize=9)

    bottom = 0.0
    for name in rungs:
        cost = data["by_rung"][name]["cost_usd"]
        ax2.barh(["cascade"], [cost], left=[bottom], label=f"{name}: ${cost:,.4f}")
        bottom += cost
    baseline = data["baseline_top_cost_usd"]
    ax2.barh(["all on top rung\n(estimate)"], [baseline], color="0.6", label=f"top rung only: ${baseline:,.4f}")
    savings = data["savings_pct"]
    ax2.set_title("Cost breakdown" + ("" if savings is None else f" (savings {savings:.1f}% vs top rung only)"))
    ax2.set_xlabel("USD")
    ax2.legend(loc="lower right", fontsize=9)
    ax2.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
