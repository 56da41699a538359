"""``cascade eval`` and ``cascade tune``: fit and replay cascades on recorded responses."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._errors import CascadeError

SNIPPET = """# Load the fitted ladder ({path}) and use its thresholds with your own providers.
import json, math
from cascade import Cascade, Ladder, Rung
from cascade.validators import check

policy = json.load(open("{path}"))

def calibrated_confidence(rung):
    # w[0] + w[1] * logit(confidence) (printed only when no rung also weighs agreement with earlier rungs)
    w = rung["w"]
    def ok(candidate):
        c = candidate.completion.confidence  # or exp(logprob) of the answer token
        if c is None:
            return False
        c = min(max(c, 1e-6), 1 - 1e-6)
        return 1 / (1 + math.exp(-(w[0] + w[1] * math.log(c / (1 - c))))) >= policy["threshold"]
    return check(ok, name="calibrated_confidence")

rungs = [Rung(name=r["model"], provider=PROVIDER, model=r["model"], price_in=r["price_in"],
              price_out=r["price_out"], validators=calibrated_confidence(r) if i < len(policy["rungs"]) - 1 else [])
         for i, r in enumerate(policy["rungs"])]
cascade = Cascade(Ladder(rungs))
"""


EXIT_NOT_CERTIFIED = 1
"""``cascade tune`` found no ladder whose risk bound meets the target: CI must not carry on as if it had."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset name in the data folder (mmlu) or a .jsonl(.gz) file in format v1")
    p.add_argument("--ladder", required=True, help="models cheapest first, comma-separated, names as in the data")
    p.add_argument("--validator", required=True, choices=["confidence", "consistency", "schema", "agreement"])
    p.add_argument(
        "--data-dir", default=None, help="folder with catalog.json (default: $CASCADE_DATA_DIR or ../shared/data)"
    )
    p.add_argument(
        "--target",
        default="agreement",
        choices=["agreement", "loss", "accuracy", "match"],
        help="risk controlled by the fit: disagreement with the top rung; loss: wrong where the top "
        "rung is right (needs gold); error; or accuracy lost against the top rung net of gains "
        "(match: --method empirical only)",
    )
    p.add_argument("--epsilon", type=float, default=0.05, help="allowed risk (default 0.05)")
    p.add_argument("--delta", type=float, default=0.1, help="allowed failure probability of the guarantee")
    p.add_argument(
        "--method",
        default="ltt",
        choices=["ltt", "ltt-split", "empirical"],
        help="ltt: Bonferroni over ladders; ltt-split: pick the ladder on 1/3, certify on 2/3; empirical: no guarantee",
    )
    p.add_argument("--max-rungs", type=int, default=3, help="largest ladder the fit may keep")


def register(subparsers: Any) -> None:
    ev = subparsers.add_parser("eval", help="replay a cascade over recorded responses and report cost/accuracy")
    _common(ev)
    g = ev.add_mutually_exclusive_group()
    g.add_argument("--thresholds", type=float, default=None, help="accept when the raw signal >= this (no fit)")
    g.add_argument("--fit", default=None, choices=["train", "test"], help="fit rungs and threshold on this split")
    g.add_argument("--policy", default=None, help="a policy JSON written by `cascade tune`")
    ev.add_argument(
        "--samples",
        type=int,
        default=None,
        help="with --thresholds and --validator consistency: samples voted per cheaper rung "
        "(default: every recorded sample)",
    )
    ev.add_argument("--split", default="test", choices=["train", "test", "all"])
    ev.add_argument("--json", action="store_true", help="print the full report as JSON")
    ev.add_argument("--plot", default=None, help="write a cost-accuracy plot (PNG) here")
    ev.set_defaults(func=_eval)
    tu = subparsers.add_parser("tune", help="fit thresholds and rungs with a risk guarantee; write a policy")
    _common(tu)
    tu.add_argument("--split", default="train", choices=["train", "test", "all"])
    tu.add_argument("--out", default=None, help="write the fitted ladder (JSON) here; without it nothing is written")
    tu.set_defaults(func=_tune)


def _load(args: argparse.Namespace) -> Any:
    from ._data import load_dataset

    if args.max_rungs < 1:
        raise CascadeError(f"--max-rungs: expected at least 1, got {args.max_rungs!r}")
    thr = getattr(args, "thresholds", None)
    if thr is not None and not 0.0 <= thr <= 1.0:
        raise CascadeError(
            f"--thresholds: expected a number in [0, 1] (every raw signal is a share or a probability), got {thr!r}"
        )
    ds = load_dataset(args.data, args.data_dir)
    ladder = [m.strip() for m in args.ladder.split(",") if m.strip()]
    if not ladder:
        raise CascadeError(f"--ladder: expected model names, got {args.ladder!r}")
    for m in ladder:
        try:
            ds.model(m)
        except CascadeError as exc:
            raise CascadeError(f"--ladder: {exc}") from None
    _check_signal(ds, ladder[:-1], args.validator)
    return ds, ladder


def _check_signal(ds: Any, cheap: list[str], validator: str) -> None:
    """A cheaper rung without the recorded signal would never accept: say so instead of replaying."""
    for m in cheap:
        entries = [r.responses[m] for r in ds.records]
        if validator == "consistency" and max(len(e.samples) for e in entries) < 2:
            raise CascadeError(
                f"--validator consistency: model {m!r} has 1 recorded sample per query in "
                f"{ds.name!r}; self-consistency needs several (try confidence or agreement)"
            )
        if validator == "confidence" and all(s.confidence is None for e in entries for s in e.samples):
            raise CascadeError(
                f"--validator confidence: model {m!r} has no recorded confidence in {ds.name!r} (try agreement)"
            )


def _fixed_samples(ds: Any, ladder: list[str], validator: str, samples: int | None) -> list[int]:
    """Samples per rung for a fixed threshold: the cheaper rungs of a consistency ladder vote over
    ``samples`` (default: all they recorded); the top rung and every other signal use one."""
    if samples is not None and (validator != "consistency" or samples < 2):
        raise CascadeError(
            f"--samples: only with --validator consistency, and at least 2; got {samples!r} "
            f"with --validator {validator}"
        )
    ks = []
    for j, m in enumerate(ladder):
        recorded = min(len(r.responses[m].samples) for r in ds.records)
        if validator != "consistency" or j == len(ladder) - 1:
            ks.append(1)
        elif samples is not None and samples > recorded:
            raise CascadeError(f"--samples: model {m!r} has {recorded} recorded sample(s) per query, got {samples}")
        else:
            ks.append(samples or recorded)
    return ks


def _check_policy(policy: Any, ladder: list[str], validator: str) -> None:
    if policy.validator != validator:
        raise CascadeError(f"--validator: the policy was fitted for {policy.validator!r}, got {validator!r}")
    extra = [m for m in policy.models if m not in ladder]
    if extra:
        raise CascadeError(f"--ladder: the policy's rungs {extra} are not in --ladder {ladder}")


def _fit(args: argparse.Namespace, ds: Any, ladder: list[str], split: str) -> Any:
    try:
        from ._fit import fit_policy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CascadeError(f"fitting needs numpy and scipy: pip install 'cascade-router[eval]' ({exc})") from None
    return fit_policy(
        ds,
        ladder,
        args.validator,
        split=split,
        target=args.target,
        epsilon=args.epsilon,
        delta=args.delta,
        method=args.method,
        max_rungs=args.max_rungs,
    )


def _eval(args: argparse.Namespace) -> int:
    from ._policy import Policy, RungPolicy
    from ._report import evaluate, plot, summary_row

    try:
        ds, ladder = _load(args)
        if args.policy:
            policy = Policy.load(args.policy)
            _check_policy(policy, ladder, args.validator)
        elif args.fit:
            policy = _fit(args, ds, ladder, args.fit)
        else:
            thr = args.thresholds if args.thresholds is not None else 0.5
            if args.thresholds is None:
                print(
                    "cascade eval: no --thresholds, --fit or --policy: accepting when the raw signal >= 0.5 "
                    "(--thresholds 0.5); pass one to choose",
                    file=sys.stderr,
                )
            ks = _fixed_samples(ds, ladder, args.validator, args.samples)
            rungs = [
                RungPolicy(m, k, [0.0, 1.0], ds.model(m).price_in, ds.model(m).price_out, identity=True)
                for m, k in zip(ladder, ks, strict=True)
            ]
            policy = Policy(ds.name, args.validator, rungs, thr, method="fixed")
        report = evaluate(ds, policy, args.split)
        if args.plot:
            plot(report, args.plot)
    except CascadeError as exc:
        print(f"cascade eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    head = ("dataset", "ladder", "accuracy", "$/query", "best single", "gap (pts)", "cost ratio", "goal")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    print("| " + " | ".join(summary_row(report)) + " |")
    for r in report["rungs"]:
        print(
            f"  rung {r['model']}: reached {r['reached']}, answered {r['answered']}, "
            f"escalation rate {r['escalation_rate']:.3f}"
        )
    apgr, matched = report["apgr"], report["cost_ratio_at_matched_accuracy"]
    print(
        f"  oracle {report['oracle']['accuracy']:.4f} @ {report['oracle']['cost_per_query']:.3g}; "
        f"APGR {'-' if apgr is None else f'{apgr:.3f}'}; hull AUC {report['hull_auc']:.4f}; "
        f"cost ratio at matched accuracy (sweep) {'none reaches it' if matched is None else f'{matched:.3f}'}"
    )
    return 0


def _tune(args: argparse.Namespace) -> int:
    try:
        ds, ladder = _load(args)
        policy = _fit(args, ds, ladder, args.split)
        if args.out:
            policy.save(args.out)
    except CascadeError as exc:
        print(f"cascade tune: {exc}", file=sys.stderr)
        return 2
    f = policy.fit
    print(f"fitted on {f['n']} {args.split} queries ({f['families']} candidate ladders, delta split Bonferroni)")
    print(f"ladder: {' > '.join(policy.models)}; threshold {policy.threshold:.4f} on calibrated {policy.validator}")
    print(
        f"{policy.target} risk {f['risk']:.4f}, {1 - policy.delta:.0%} upper bound {f['risk_bound']:.4f} "
        f"(target <= {policy.epsilon}); {'certified' if f['certified_ok'] else 'NOT certified'}"
    )
    print(f"cost/query {f['cost_per_query']:.3g} vs top rung alone {f['top_cost_per_query']:.3g}")
    certified = bool(f["certified_ok"])
    if not certified:  # a policy without its guarantee is not something to paste into production
        print(f"wrote {args.out} (not certified)" if args.out else "nothing written (not certified)")
        return EXIT_NOT_CERTIFIED
    if not args.out:
        print("nothing written: pass --out FILE to save the policy (and see the code that loads it)")
        return 0
    print(f"wrote {args.out}\n")
    extra = [r.model for r in policy.rungs[:-1] if len(r.w) > 2]
    if policy.validator != "confidence" or extra:
        why = (
            f"its rungs {extra} also weigh agreement with earlier rungs' answers"
            if extra
            else f"its signal is {policy.validator!r}"
        )
        print(
            f"(no code snippet: the snippet covers calibrated confidence alone and {why}; apply the JSON's "
            f"weights with cascade.replay.Policy.load({args.out!r}).rungs[i].probability)"
        )
        return 0
    print(SNIPPET.format(path=args.out))
    return 0
