"""The derived figures of cost-analysis.md that are not a row of ``benchmarks/replay.py``: what the
pattern itself costs (cheap rungs, samples), escalation rates, the cheap rung's signal strength
(AUROC) and the train/test shift. Fits on train, reports on test, like the benchmark.
Usage: python benchmarks/replay_figures.py
Data: $CASCADE_DATA_DIR or ../shared/data next to the checkout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scipy.stats import rankdata

from cascade.replay import Dataset, load_dataset, single_models
from cascade.replay._fit import fit_policy
from cascade.replay._policy import answer_key
from cascade.replay._provider import sample_cost, sample_order
from cascade.replay._report import evaluate

MMLU = [
    "llama3.2-1b",
    "llama3.2-3b",
    "gpt-4o-mini",
    "llama3.1-8b",
    "llama3.1-70b",
    "qwen2.5-32b-coder-instruct",
    "qwen2.5-72b-instruct",
    "gpt-4o",
    "llama3.1-405b",
]
MEDMCQA = [
    "llama3.2-1b",
    "llama3.2-3b",
    "gpt-4o-mini",
    "llama3.1-8b",
    "qwen2.5-32b-coder-instruct",
    "qwen2.5-72b-instruct",
    "llama3.1-70b",
    "gpt-4o",
]
ARC_TOP = "gpt-4-1106-preview"


def auroc(score: Sequence[float], label: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    ranks = rankdata(score)
    pos = sum(1 for y in label if y)
    neg = len(label) - pos
    return float((sum(r for r, y in zip(ranks, label, strict=True) if y) - pos * (pos + 1) / 2) / (pos * neg))


def cost(ds: Dataset, split: str = "test") -> dict[str, float]:
    prices = {m.model: (m.price_in, m.price_out) for m in ds.models}
    return {s.model: s.cost_per_query for s in single_models(ds.split(split), prices)}


def escalation(ds: Dataset, ladder: list[str], validator: str, eps: float) -> str:
    rep = evaluate(ds, fit_policy(ds, ladder, validator, epsilon=eps), "test")
    return "; ".join(
        f"{r['model']} reached {r['reached'] / rep['n']:.1%} escalates {r['escalation_rate']:.1%}" for r in rep["rungs"]
    )


def main() -> int:
    med = load_dataset("medmcqa")
    c = cost(med)
    print(f"medmcqa: gpt-4o-mini costs {c['gpt-4o-mini'] / c['gpt-4o']:.1%} of gpt-4o")
    for eps in (0.05, 0.08):
        print(f"medmcqa eps {eps}: {escalation(med, MEDMCQA, 'confidence', eps)}")
    test = med.split("test")
    conf = [r.responses["gpt-4o-mini"].samples[0].confidence or 0.0 for r in test]
    right = [bool(r.responses["gpt-4o-mini"].samples[0].correct) for r in test]
    agree = [
        answer_key(r.responses["gpt-4o-mini"].samples[0].answer) == answer_key(r.responses["gpt-4o"].samples[0].answer)
        for r in test
    ]
    print(
        f"medmcqa test: AUROC of gpt-4o-mini's confidence for its own correctness {auroc(conf, right):.3f}, "
        f"for agreeing with gpt-4o {auroc(conf, agree):.3f}"
    )
    prices = {m.model: (m.price_in, m.price_out) for m in med.models}
    acc = {split: {s.model: s.accuracy for s in single_models(med.split(split), prices)} for split in ("train", "test")}
    print(f"medmcqa: gpt-4o accuracy {acc['train']['gpt-4o']:.3f} on train, {acc['test']['gpt-4o']:.3f} on test")

    mmlu = load_dataset("mmlu")
    c = cost(mmlu)
    print(
        f"mmlu: llama3.2-3b costs {c['llama3.2-3b'] / c['llama3.1-405b']:.1%}, gpt-4o-mini "
        f"{c['gpt-4o-mini'] / c['llama3.1-405b']:.1%} of llama3.1-405b"
    )
    print(f"mmlu eps 0.05: {escalation(mmlu, MMLU, 'confidence', 0.05)}")
    prices = {m.model: (m.price_in, m.price_out) for m in mmlu.models}
    for split in ("train", "test"):
        ranked = sorted(single_models(mmlu.split(split), prices), key=lambda s: -s.accuracy)[:3]
        print(
            f"mmlu {split} ({len(mmlu.split(split))} items): most accurate "
            + ", ".join(f"{s.model} {s.accuracy:.3f}" for s in ranked)
        )

    arc = load_dataset("routerbench_arc_challenge")
    c = cost(arc)
    yi, instant = "zero-one-ai/Yi-34B-Chat", "claude-instant-v1"
    print(
        f"arc: {yi} + {instant} = ${c[yi] + c[instant]:.5f}/query = {(c[yi] + c[instant]) / c[ARC_TOP]:.1%} "
        f"of {ARC_TOP}"
    )
    ladder = [m for m in arc.model_names if m != ARC_TOP and arc.model(m).price_in <= arc.model(ARC_TOP).price_in]
    print(f"arc eps 0.05: {escalation(arc, [*ladder, ARC_TOP], 'agreement', 0.05)}")
    test = arc.split("test")
    both = [
        r
        for r in test
        if answer_key(r.responses[yi].samples[0].answer) == answer_key(r.responses[instant].samples[0].answer)
    ]
    wrong = sum(1 for r in both if r.responses[ARC_TOP].samples[0].correct and not r.responses[yi].samples[0].correct)
    print(
        f"arc test: {yi} and {instant} agree on {len(both)} of {len(test)}; of those, wrong where "
        f"{ARC_TOP} is right: {wrong} ({wrong / len(both):.1%})"
    )

    mot = load_dataset("mot_date")
    c = cost(mot)
    pin, pout = mot.model("gpt-3.5-turbo").price_in, mot.model("gpt-3.5-turbo").price_out
    test = mot.split("test")
    four = sum(
        sample_cost(
            r.responses["gpt-3.5-turbo"], sample_order(r.responses["gpt-3.5-turbo"], "interleave")[:4], pin, pout
        )
        for r in test
    ) / len(test)
    prompt = sum(r.responses["gpt-3.5-turbo"].tokens_in for r in test) / len(test)
    print(
        f"mot_date: 4 gpt-3.5-turbo samples (prompt charged once, mean {prompt:.0f} prompt tokens) = "
        f"{four / c['gpt-4']:.1%} of one gpt-4 call; gpt-4 one call ${c['gpt-4']:.4f}, all 3 recorded samples "
        f"${sum(r.responses['gpt-4'].cost_usd for r in test) / len(test):.4f}"
    )

    for ds in (mmlu, med, mot, arc):
        top = {"mmlu": "llama3.1-405b", "medmcqa": "gpt-4o", "mot_date": "gpt-4"}.get(ds.name, ARC_TOP)
        n = len(ds.split("train"))
        print(f"{ds.name}: {n} train items; labelling them with the top rung costs ${n * cost(ds, 'train')[top]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
