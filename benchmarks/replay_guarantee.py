"""How often a fitted ladder breaks its risk target out of sample, by fitting method.

Uses the synthetic law of ``tests/test_replay_calibrate.py`` (a cheap model whose confidence ``c ~ U(0, 1)``
agrees with the top model with probability ``0.3 + 0.65 c``), where the true risk of a fitted policy is
known exactly. Prints the share of refits whose true disagreement exceeds epsilon: LTT must stay <= delta.
Usage: python benchmarks/replay_guarantee.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test's law and exact risk

from replay_helpers import dataset, synthetic
from test_replay_calibrate import true_risk

from cascade.replay._fit import fit_policy

SETTINGS = [(120, 60, 0.12, 0.2, 1), (60, 40, 0.12, 0.1, 2)]  # items, refits, epsilon, delta, seed (as the tests)


def main() -> int:
    print("| items | refits | epsilon | delta | ltt | ltt-split | empirical |")
    print("|---|---|---|---|---|---|---|")
    for n, runs, eps, delta, seed in SETTINGS:
        rng = random.Random(seed)
        bad = {"ltt": 0, "ltt-split": 0, "empirical": 0}
        for _ in range(runs):
            fit = dataset(synthetic(n, rng))
            for method in bad:
                pol = fit_policy(
                    fit, ["cheap", "top"], "confidence", epsilon=eps, delta=delta, max_rungs=2, method=method
                )
                bad[method] += true_risk(pol) > eps
        print(
            f"| {n} | {runs} | {eps} | {delta} | "
            + " | ".join(f"{v}/{runs} = {v / runs:.2f}" for v in bad.values())
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
