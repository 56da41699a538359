"""Fit a replay ladder on labelled records: which rungs to keep, calibration, one threshold.

Method (Learn-Then-Test with fixed-sequence testing, Angelopoulos et al. 2021):
* risk per query: ``agreement`` = the cascade's answer differs from the top rung's answer (labels
  can come from the top rung alone); ``loss`` = the top rung alone is right and the cascade is
  wrong (needs gold; bounds the accuracy lost against the top rung, gains are not counted);
  ``accuracy`` = the cascade's answer is wrong (needs gold);
* each candidate ladder (a subset of the cheaper rungs plus the top, and for self-consistency the
  number of samples per rung) is a family; Bonferroni splits ``delta`` over the families;
* inside a family the thresholds are tested from strict to lax; ``H0: risk > epsilon`` is rejected
  when the Clopper-Pearson upper bound at level ``1 - delta/families`` is ``<= epsilon``; testing
  stops at the first threshold that is not rejected (fixed sequence, so no further correction);
* among the rejected (certified) configurations the cheapest on the fitting data is returned.
Then with probability at least ``1 - delta`` over the fitting sample, the returned ladder's risk on
new queries from the same distribution is at most ``epsilon``. ``method="empirical"`` skips the
bound (risk on the fitting data ``<= epsilon``): no guarantee, for comparison only.
Needs numpy and scipy (the ``[eval]`` extra).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaincinv

from .._errors import ConfigError
from ._data import Dataset, Record
from ._policy import KINDS, Policy, RungPolicy, rung_outcome

FArr = NDArray[np.float64]
IArr = NDArray[np.int64]
THRESHOLDS: FArr = np.round(np.linspace(0.999, 0.3, 100), 4)


@functools.lru_cache(maxsize=65536)
def clopper_pearson_upper(errors: int, n: int, delta: float) -> float:
    """One-sided (1 - delta) Clopper-Pearson upper bound on a binomial rate from ``errors`` of ``n``."""
    if n <= 0:
        return 1.0
    if errors >= n:
        return 1.0
    return float(betaincinv(errors + 1, n - errors, 1 - delta))


def fit_logistic(x: FArr, y: FArr, ridge: float = 1e-3, iters: int = 50) -> list[float]:
    """Platt scaling / logistic regression: ``P(y=1 | x) = sigmoid(w0 + w . x)`` by Newton's method
    with a small ridge. ``x`` is (n,) or (n, d); returns ``[w0, w1, ...]``."""
    x2 = x.reshape(len(x), -1)
    if len(x2) == 0:
        return [0.0] * (x2.shape[1] + 1)
    X = np.c_[np.ones(len(x2)), x2]
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        g = X.T @ (p - y) + ridge * w
        H = (X.T * (p * (1 - p))) @ X + ridge * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        w -= step
        if float(np.max(np.abs(step))) < 1e-9:
            break
    return [float(v) for v in w]


@dataclass
class Column:
    """One rung's outcomes over the records: answer keys and codes (-1 = none), correctness, cost,
    raw signal and calibrator features (``ok`` False where there is no signal)."""

    keys: list[str | None]
    code: IArr
    correct: FArr
    cost: FArr
    raw: list[float | None]
    feats: FArr
    ok: NDArray[np.bool_]
    check_cost: FArr | None = None  # paid when the rung's check runs (a separate confidence call)


class Table:
    """Per-record rung outcomes for a set of records. Each (model, k) is scored once per dataset with
    ``rung_outcome`` (cached on the dataset, so folds and refits reuse it); the features that compare
    a rung with the earlier ones are then added with array operations, exactly as :func:`signal` does."""

    def __init__(self, dataset: Dataset, records: Sequence[Record], kind: str, order: str = "interleave") -> None:
        self.dataset, self.records, self.kind, self.order = dataset, list(records), kind, order
        self.prices = {m.model: (m.price_in, m.price_out) for m in dataset.models}
        self._cols: dict[tuple[str, int, tuple[str, ...]], Column] = {}
        self._base = _base_cache(dataset, kind, order)
        pos = self._base.positions
        self.rows = np.array([pos[r.id] for r in self.records], dtype=np.int64)

    def code(self, key: str | None) -> int:
        return self._base.code(key)

    def column(self, model: str, k: int = 1, previous: Sequence[tuple[str, Column]] = ()) -> Column:
        """``previous``: the earlier rungs (name, column), used by signals that compare answers."""
        uses_prev = self.kind in ("confidence", "agreement")
        names = tuple(n for n, _ in previous) if uses_prev else ()
        cached = self._cols.get((model, k, names))
        if cached is not None:
            return cached
        base = self._base.column(model, k, self.prices[model])
        rows = self.rows
        code = base.code[rows]
        if uses_prev and previous:
            agree = np.stack([((code >= 0) & (c.code == code)).astype(float) for _, c in previous], axis=1)
        else:
            agree = np.zeros((len(rows), 0))
        raw: list[float | None] = [base.raw[i] for i in rows]
        if self.kind == "confidence":
            feats = np.c_[base.feats[rows], agree]
        elif self.kind == "agreement":
            share = agree.mean(axis=1) if agree.shape[1] else np.zeros(len(rows))
            feats = share.reshape(-1, 1)
            raw = [float(x) for x in share]
        else:
            feats = base.feats[rows]
        col = Column(
            [base.keys[i] for i in rows],
            code,
            base.correct[rows],
            base.cost[rows],
            raw,
            feats,
            base.ok[rows],
            base.check_cost[rows] if base.check_cost is not None else None,
        )
        self._cols[(model, k, names)] = col
        return col


class _Base:
    """Every record of a dataset scored once per (model, k), without earlier rungs."""

    def __init__(self, dataset: Dataset, kind: str, order: str) -> None:
        self.dataset, self.kind, self.order = dataset, kind, order
        self.positions = {r.id: i for i, r in enumerate(dataset.records)}
        self._codes: dict[str, int] = {}
        self._cols: dict[tuple[str, int], Column] = {}

    def code(self, key: str | None) -> int:
        return -1 if key is None else self._codes.setdefault(key, len(self._codes))

    def column(self, model: str, k: int, prices: tuple[float, float]) -> Column:
        got = self._cols.get((model, k))
        if got is not None:
            return got
        outs = [rung_outcome(self.kind, r, model, k=k, prices=prices, order=self.order) for r in self.dataset.records]
        width = max((len(o.feats) for o in outs if o.feats is not None), default=1)
        feats = np.array([o.feats if o.feats is not None else (0.0,) * width for o in outs], float).reshape(
            len(outs), width
        )
        col = Column(
            [o.key for o in outs],
            np.array([self.code(o.key) for o in outs], dtype=np.int64),
            np.array([o.correct for o in outs], float),
            np.array([o.cost for o in outs]),
            [o.raw for o in outs],
            feats,
            np.array([o.feats is not None for o in outs]),
            np.array([o.check_cost for o in outs]),
        )
        self._cols[(model, k)] = col
        return col


_BASES: dict[tuple[int, str, str], tuple[Dataset, _Base]] = {}


def _base_cache(dataset: Dataset, kind: str, order: str) -> _Base:
    key = (id(dataset), kind, order)
    got = _BASES.get(key)
    if got is None or got[0] is not dataset:
        if len(_BASES) > 16:
            _BASES.clear()
        got = (dataset, _Base(dataset, kind, order))
        _BASES[key] = got
    return got[1]


def _prob(rung: RungPolicy, col: Column) -> FArr:
    if rung.identity:
        return np.array([0.0 if r is None else float(r) for r in col.raw])
    z = np.clip(rung.w[0] + col.feats @ np.array(rung.w[1:]), -30, 30)
    out: FArr = np.where(col.ok, 1 / (1 + np.exp(-z)), 0.0)
    return out


@dataclass
class Family:
    """A candidate ladder with its calibrated rungs and its outcomes at every threshold."""

    rungs: list[RungPolicy]
    cols: list[Column]
    probs: list[FArr]

    def run(self, thresholds: FArr) -> tuple[IArr, FArr, FArr]:
        """Answering rung index (n x T), cost (n x T) and the final column's correctness (n x T)."""
        n, t = len(self.cols[0].code), len(thresholds)
        who = np.full((n, t), len(self.cols) - 1, dtype=np.int64)
        cost = np.zeros((n, t))
        open_ = np.ones((n, t), bool)
        for j, col in enumerate(self.cols):
            cost += open_ * col.cost[:, None]
            if j < len(self.cols) - 1:
                if col.check_cost is not None:
                    cost += open_ * col.check_cost[:, None]
                acc = open_ & (self.probs[j][:, None] >= thresholds[None, :])
                who[acc] = j
                open_ &= ~acc
        correct = np.zeros((n, t))
        for j, col in enumerate(self.cols):
            correct += (who == j) * col.correct[:, None]
        return who, cost, correct

    def codes(self, who: IArr) -> IArr:
        out = np.zeros(who.shape, dtype=np.int64)
        for j, col in enumerate(self.cols):
            out += (who == j) * col.code[:, None]
        return out


def build_family(table: Table, models: Sequence[str], ks: Sequence[int], top: Column, target: str) -> Family:
    """Calibrate each non-top rung on ``table`` against the target event (logistic regression)."""
    cols: list[Column] = []
    rungs: list[RungPolicy] = []
    probs: list[FArr] = []
    for j, (m, k) in enumerate(zip(models, ks, strict=True)):
        col = table.column(m, k, list(zip(models[:j], cols, strict=True)))
        pin, pout = table.prices[m]
        rung = RungPolicy(m, k, [0.0] * (col.feats.shape[1] + 1), pin, pout)
        if j < len(models) - 1:
            event = col.correct if target == "accuracy" else ((col.code >= 0) & (col.code == top.code)).astype(float)
            rung.w = fit_logistic(col.feats[col.ok], event[col.ok])
            if rung.w[1] < 0:  # an inverted headline signal is no signal: never accept on it
                rung.w = [-30.0] + [0.0] * (len(rung.w) - 1)
            probs.append(_prob(rung, col))
        cols.append(col)
        rungs.append(rung)
    return Family(rungs, cols, probs)


def risk_matrix(fam: Family, who: IArr, correct: FArr, top: Column, target: str) -> FArr:
    if target == "accuracy":
        return 1 - correct
    if target == "loss":  # the top rung alone is right and the cascade is wrong
        loss: FArr = top.correct[:, None] * (1 - correct)
        return loss
    if target == "match":  # accuracy lost against the top rung alone (negative where the cascade gains)
        lost: FArr = top.correct[:, None] - correct
        return lost
    codes = fam.codes(who)
    last = len(fam.cols) - 1
    agree = (who == last) | ((codes >= 0) & (codes == top.code[:, None]))
    out: FArr = (~agree).astype(float)
    return out


def fit_policy(
    dataset: Dataset,
    ladder: Sequence[str],
    validator: str,
    *,
    split: str = "train",
    records: Sequence[Record] | None = None,
    target: str = "agreement",
    epsilon: float = 0.05,
    delta: float = 0.1,
    method: str = "ltt",
    max_rungs: int = 3,
    ks: Sequence[int] = (2, 4, 6, 10, 20, 40),
    order: str = "interleave",
) -> Policy:
    """Pick rungs, calibration and threshold minimising cost with risk <= epsilon (see module doc)."""
    if validator not in KINDS:
        raise ConfigError(f"validator: expected one of {list(KINDS)}, got {validator!r}")
    if target not in ("agreement", "loss", "accuracy", "match"):
        raise ConfigError(f"target: expected 'agreement', 'loss', 'accuracy' or 'match', got {target!r}")
    if target == "match" and method != "empirical":
        raise ConfigError(
            "target 'match' (accuracy within epsilon of the top rung) has a signed loss that the "
            "Clopper-Pearson bound does not cover: use method='empirical'"
        )
    if method not in ("ltt", "empirical", "ltt-split"):
        raise ConfigError(f"method: expected 'ltt', 'ltt-split' or 'empirical', got {method!r}")
    if not (0 <= epsilon < 1 if target == "match" else 0 < epsilon < 1) or not 0 < delta < 1:
        raise ConfigError(f"epsilon and delta must be in (0, 1), got epsilon={epsilon!r}, delta={delta!r}")
    for m in ladder:
        dataset.model(m)
    recs = list(records) if records is not None else dataset.split(split)
    if not recs:
        raise ConfigError(f"no records to fit on (split {split!r})")
    if method == "ltt-split":
        return _fit_split(
            dataset,
            ladder,
            validator,
            recs,
            target=target,
            epsilon=epsilon,
            delta=delta,
            max_rungs=max_rungs,
            ks=ks,
            order=order,
        )
    table = Table(dataset, recs, validator, order)
    top_name = ladder[-1]
    top = table.column(top_name, 1)
    n = len(recs)
    families: list[tuple[list[str], list[int]]] = [([top_name], [1])]
    kk: tuple[int, ...]
    for size in range(1, max(1, max_rungs)):
        for sub in itertools.combinations(ladder[:-1], size):
            options = [
                [k for k in ks if 1 < k <= len(recs[0].responses[m].samples)] or [1]
                if validator == "consistency"
                else [1]
                for m in sub
            ]
            for kk in itertools.product(*options):
                families.append(([*sub, top_name], [*kk, 1]))
    level = delta / len(families)
    best: tuple[float, float, Family, float, int, float] | None = None  # cost, -thr, fam, thr, risk, ucb
    certified = 0
    for models, ks_ in families:
        fam = build_family(table, models, ks_, top, target)
        who, cost, correct = fam.run(THRESHOLDS)
        risks = risk_matrix(fam, who, correct, top, target).sum(axis=0).round(9)
        costs = cost.mean(axis=0)
        for t, thr in enumerate(THRESHOLDS):
            r = int(risks[t])
            ucb = clopper_pearson_upper(r, n, level) if method == "ltt" else float(risks[t]) / n
            if ucb > epsilon:
                if method == "ltt":
                    break  # fixed sequence: stop at the first threshold not certified
                continue
            certified += 1
            cand = (float(costs[t]), -float(thr), fam, float(thr), r, ucb)
            if best is None or cand[:2] < best[:2]:
                best = cand
            if len(models) == 1:
                break
    if best is None:  # even the top rung alone is not certified (accuracy target too high)
        fam = build_family(table, [top_name], [1], top, target)
        who, cost, correct = fam.run(THRESHOLDS[:1])
        r = int(risk_matrix(fam, who, correct, top, target).sum())
        best = (float(cost.mean()), -1.0, fam, 1.0, r, clopper_pearson_upper(r, n, level))
    cost_, _, fam, thr, r, ucb = best
    who, cost, correct = fam.run(np.array([thr]))
    info: dict[str, Any] = {
        "split": split if records is None else "given",
        "n": n,
        "families": len(families),
        "certified": certified,
        "risk": r / n,
        "risk_bound": ucb,
        "certified_ok": ucb <= epsilon,
        "cost_per_query": cost_,
        "accuracy": float(correct.mean()),
        "top_cost_per_query": float(top.cost.mean()),
        "top_accuracy": float(top.correct.mean()),
    }
    return Policy(dataset.name, validator, fam.rungs, thr, order, target, epsilon, delta, method, info)


def _fit_split(
    dataset: Dataset,
    ladder: Sequence[str],
    validator: str,
    recs: Sequence[Record],
    *,
    target: str,
    epsilon: float,
    delta: float,
    max_rungs: int,
    ks: Sequence[int],
    order: str,
) -> Policy:
    """``ltt-split``: choose the ladder and calibration on a third of the records (by hash of the id),
    then certify the threshold on the other two thirds by fixed-sequence testing at level ``delta``:
    no Bonferroni over ladders, since the ladder does not depend on the certification records."""
    ranked = sorted(recs, key=lambda r: hashlib.sha256(r.id.encode()).hexdigest())
    cut = max(1, len(ranked) // 3)
    select, certify = ranked[:cut], ranked[cut:]
    chosen = fit_policy(
        dataset,
        ladder,
        validator,
        records=select,
        target=target,
        epsilon=epsilon,
        delta=delta,
        method="empirical",
        max_rungs=max_rungs,
        ks=ks,
        order=order,
    )
    table = Table(dataset, certify, validator, order)
    top = table.column(ladder[-1], 1)
    fam = build_family(table, chosen.models, [r.k for r in chosen.rungs], top, target)
    _apply_calibration(fam, chosen, table)
    who, cost, correct = fam.run(THRESHOLDS)
    risks = risk_matrix(fam, who, correct, top, target).sum(axis=0)
    costs = cost.mean(axis=0)
    n = len(certify)
    pick: tuple[float, int, float] | None = None  # cost, index, bound
    for t in range(len(THRESHOLDS)):
        ucb = clopper_pearson_upper(int(risks[t]), n, delta)
        if ucb > epsilon:
            break
        if pick is None or costs[t] < pick[0]:
            pick = (float(costs[t]), t, ucb)
        if len(chosen.rungs) == 1:
            break
    info: dict[str, Any] = {"split": "given", "n_select": len(select), "n": n, "families": 1}
    if pick is None or pick[0] >= float(top.cost.mean()):  # nothing cheaper than the top rung alone
        top_policy = fit_policy(
            dataset,
            [ladder[-1]],
            validator,
            records=certify,
            target=target,
            epsilon=epsilon,
            delta=delta,
            method="empirical",
            order=order,
        )
        top_policy.method = "ltt-split"
        top_policy.fit.update(info, certified_ok=False)
        return top_policy
    cost_, t, ucb = pick
    info.update(
        certified=t + 1,
        risk=float(risks[t]) / n,
        risk_bound=ucb,
        certified_ok=True,
        cost_per_query=cost_,
        accuracy=float(correct[:, t].mean()),
        top_cost_per_query=float(top.cost.mean()),
        top_accuracy=float(top.correct.mean()),
    )
    return Policy(
        dataset.name, validator, chosen.rungs, float(THRESHOLDS[t]), order, target, epsilon, delta, "ltt-split", info
    )


def sweep(
    dataset: Dataset, policy: Policy, records: Sequence[Record], thresholds: FArr = THRESHOLDS
) -> list[tuple[float, float, float]]:
    """(threshold, accuracy, cost per query) of the policy's ladder at every threshold, on ``records``."""
    table = Table(dataset, records, policy.validator, policy.order)
    top = table.column(policy.rungs[-1].model, 1)
    fam = build_family(table, policy.models, [r.k for r in policy.rungs], top, policy.target)
    _apply_calibration(fam, policy, table)
    _, cost, correct = fam.run(thresholds)
    return [(float(t), float(a), float(c)) for t, a, c in zip(thresholds, correct.mean(0), cost.mean(0), strict=False)]


def _apply_calibration(fam: Family, policy: Policy, table: Table) -> None:
    """Replace the calibration fitted on ``table`` by the policy's (fitted on train)."""
    fam.rungs = policy.rungs
    fam.probs = [_prob(rung, fam.cols[j]) for j, rung in enumerate(policy.rungs[:-1])]
