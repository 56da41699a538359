"""``cascade eval`` and ``cascade tune``: fit and replay cascades on recorded responses."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._errors import CascadeError

SNIPPET = """# Run the fitted policy live: each rung is asked for exactly the signals it reads ({signals}).
from cascade import Cascade, OpenAICompatible

cascade = Cascade.from_policy("{path}", providers=OpenAICompatible(base_url="{base_url}"))
"""
SNIPPET_BASE_URL = "http://127.0.0.1:8000/v1"
METHODS = ["never-lose", "ltt", "ltt-split", "empirical"]


EXIT_NOT_CERTIFIED = 1
"""``cascade tune`` found no ladder whose risk bound meets the target: CI must not carry on as if it had."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="dataset name in the data folder (mmlu) or a .jsonl(.gz) file in format v1")
    p.add_argument(
        "--ladder",
        default=None,
        help="models cheapest first, comma-separated, names as in the data (default: the policy's with --policy; "
        "every model of the data for the never-lose fit)",
    )
    p.add_argument(
        "--validator",
        default=None,
        choices=["confidence", "consistency", "schema", "agreement"],
        help="the signal each cheaper rung is judged on (default: read from the data: consistency where samples "
        "are recorded, else confidence, else schema for extraction, else agreement)",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder with catalog.json (default: $CASCADE_DATA_DIR or ../shared/data)"
    )
    p.add_argument(
        "--target",
        default="loss",
        choices=["agreement", "loss", "accuracy", "match"],
        help="risk controlled by the fit (default loss: wrong where the top rung is right; needs the top "
        "rung's answers and gold on a sample); agreement: disagreement with the top rung; accuracy: error; "
        "match: accuracy lost against the top rung net of gains (--method empirical only)",
    )
    p.add_argument("--epsilon", type=float, default=0.05, help="allowed risk (default 0.05)")
    p.add_argument("--delta", type=float, default=0.1, help="allowed failure probability of the guarantee")
    p.add_argument(
        "--method",
        default="never-lose",
        choices=METHODS,
        help="never-lose (default): the top is the best single model on the fitting data, chosen with its "
        "uncertainty in mind (one-standard-error rule, price prior within 10x), a cascade only where "
        "cross-validation shows it holds, else that model alone; ltt: Bonferroni over the given ladder's "
        "subsets; ltt-split: pick the ladder on 1/3, certify on 2/3; empirical: no guarantee",
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
    tu.add_argument(
        "--from-log",
        action="append",
        default=None,
        metavar="LOG",
        help="refit --policy's threshold from shadowed traffic in this log (repeatable; no data needed)",
    )
    tu.add_argument("--policy", default=None, help="with --from-log: the policy to refit")
    tu.set_defaults(func=_tune)


def _load(args: argparse.Namespace) -> Any:
    from ._data import load_dataset
    from ._ladder_check import check_ladder, default_validator

    if args.max_rungs < 1:
        raise CascadeError(f"--max-rungs: expected at least 1, got {args.max_rungs!r}")
    thr = getattr(args, "thresholds", None)
    if thr is not None and not 0.0 <= thr <= 1.0:
        raise CascadeError(
            f"--thresholds: expected a number in [0, 1] (every raw signal is a share or a probability), got {thr!r}"
        )
    if args.data is None:
        raise CascadeError("data: name a dataset (mmlu) or a .jsonl(.gz) file of recorded responses")
    ds = load_dataset(args.data, args.data_dir)
    fits = hasattr(args, "out") or getattr(args, "fit", None) is not None  # tune, or eval --fit
    policy = None
    if getattr(args, "policy", None):
        from ._policy import Policy

        policy = Policy.load(args.policy)
    if args.ladder is None:
        if (policy is None and args.method != "never-lose") or getattr(args, "thresholds", None) is not None:
            raise CascadeError("--ladder: required unless --policy is given or the fit is --method never-lose")
        args.ladder = ",".join(policy.models if policy is not None else ds.model_names)
        if policy is not None and args.validator is None:
            args.validator = policy.validator
    ladder = [m.strip() for m in args.ladder.split(",") if m.strip()]
    if not ladder:
        raise CascadeError(f"--ladder: expected model names, got {args.ladder!r}")
    for m in ladder:
        try:
            ds.model(m)
        except CascadeError as exc:
            raise CascadeError(f"--ladder: {exc}") from None
    never_lose = args.method == "never-lose" and policy is None and fits
    if args.validator is None and not never_lose:
        args.validator = default_validator(ds, ladder)
    for warning in check_ladder(ds, ladder, args.validator, order_matters=not never_lose):
        print(f"warning: {warning}", file=sys.stderr)
    split = getattr(args, "split", None)
    if split is not None and not ds.split(split):
        have = {s: len(ds.split(s)) for s in ("train", "test") if ds.split(s)}
        other = next(iter(have), "all")
        raise CascadeError(f"--split {split}: {ds.name!r} has no {split} records (it has {have}); pass --split {other}")
    return ds, ladder, policy


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
        from ._safe import fit_never_lose
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CascadeError(f"fitting needs numpy and scipy: pip install 'cascade-router[eval]' ({exc})") from None
    from ._answer_rule import confidence_reading, infer_answer_rule

    if args.method == "never-lose":
        if args.target != "loss":
            raise CascadeError(f"--target: the never-lose fit certifies the loss target, got {args.target!r}")
        policy = fit_never_lose(
            ds, ds.split(split), models=ladder, validator=args.validator, delta=args.delta, max_rungs=args.max_rungs
        )
    else:
        policy = _fit_given(args, ds, ladder, split, fit_policy)
    policy.answer, policy.fit["answer_rule_match"] = infer_answer_rule(ds, policy.models)
    policy.confidence = confidence_reading(ds)
    policy.fit["split"] = split
    return policy


def _fit_given(args: argparse.Namespace, ds: Any, ladder: list[str], split: str, fit_policy: Any) -> Any:
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
        ds, ladder, loaded = _load(args)
        if loaded is not None:
            policy = loaded
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
    ceil, share = report.get("ceiling"), report.get("share_of_ceiling_saving")
    if ceil is None:
        print("  in-sample ceiling: none (no model cheaper than the best single, or no usable signal)")
    else:
        print(
            f"  in-sample ceiling (calibration and threshold chosen on this split; not reachable by a fit): "
            f"{' > '.join(ceil['ladder'])} on {ceil['validator']}: {ceil['gap_points']:+.2f} pt at "
            f"{ceil['cost_ratio']:.3f}x; share of its saving captured: {'-' if share is None else f'{share:.0%}'}"
        )
    return 0


def _tune(args: argparse.Namespace) -> int:
    if args.from_log:
        return _refit(args)
    try:
        ds, ladder, _ = _load(args)
        policy = _fit(args, ds, ladder, args.split)
        if args.out:
            policy.save(args.out)
    except CascadeError as exc:
        print(f"cascade tune: {exc}", file=sys.stderr)
        return 2
    f = policy.fit
    if policy.method == "never-lose":
        _say_never_lose(policy)
    else:
        print(f"fitted on {f['n']} {args.split} queries ({f['families']} candidate ladders, delta split Bonferroni)")
    print(f"ladder: {' > '.join(policy.models)}; threshold {policy.threshold:.4f} on calibrated {policy.validator}")
    certified = bool(f.get("certified_ok", len(policy.rungs) == 1))
    if policy.method == "empirical":  # the risk on the fitting data itself: nothing is bounded
        print(
            f"{policy.target} risk {f['risk']:.4f} on the fitting data (target <= {policy.epsilon}); "
            f"{'met' if certified else 'NOT met'} there, with no guarantee on new queries (method empirical)"
        )
    else:
        print(
            f"{policy.target} risk {f['risk']:.4f}, {1 - policy.delta:.0%} upper bound {f['risk_bound']:.4f} "
            f"(target <= {policy.epsilon}); {'certified' if certified else 'NOT certified'}"
        )
    print(f"cost/query {f['cost_per_query']:.3g} vs top rung alone {f['top_cost_per_query']:.3g}")
    rate = f.get("answer_rule_match")
    if rate is not None and rate < 1.0:
        print(f"note: the answer rule {policy.answer} reproduces {rate:.2%} of the recorded answers from their texts")
    if not certified:  # a policy without its guarantee is not something to paste into production
        print(f"wrote {args.out} (not certified)" if args.out else "nothing written (not certified)")
        return EXIT_NOT_CERTIFIED
    if not args.out:
        print("nothing written: pass --out FILE to save the policy (and see the code that loads it)")
        return 0
    print(f"wrote {args.out}\n")
    print(SNIPPET.format(path=args.out, base_url=SNIPPET_BASE_URL, signals=", ".join(policy.signals) or "none"))
    return 0


def _say_never_lose(policy: Any) -> None:
    f = policy.fit
    print(
        f"never-lose fit on {f['n']} queries: best single model {f['top']!r} "
        f"(accuracy {f['top_accuracy']:.4f}, ${f['top_cost_per_query']:.3g}/query); candidates {f['candidates']}"
    )
    if f.get("top_why") and f.get("train_best") != f["top"]:
        print(f"  top rung {f['top']!r}, not the most accurate {f['train_best']!r}: {f['top_why']}")
    for h in f.get("held_out", []):
        print(
            f"  held out ({f['folds']}-fold): loss eps {h['epsilon']:g}: "
            f"{h['gap_points']:+.2f} pt at {h['cost_ratio']:.3f}x"
        )
    for note in f.get("notes", []):
        print(f"cannot reach a saving: {note}")
    if not f.get("cascade"):
        print(f"no cascade: {f['why']}; the policy is {f['top']!r} alone")


def _refit(args: argparse.Namespace) -> int:
    """``tune --from-log``: the policy's threshold refitted on the shadow audit's pairs."""
    from ._from_log import refit_from_log
    from ._policy import Policy

    try:
        if args.policy is None:
            raise CascadeError("--from-log: pass --policy PATH, the policy the logged cascade ran")
        policy, info = refit_from_log(Policy.load(args.policy), args.from_log, epsilon=args.epsilon, delta=args.delta)
        if args.out:
            policy.save(args.out)
    except CascadeError as exc:
        print(f"cascade tune: {exc}", file=sys.stderr)
        return 2
    print(
        f"refit from {info['shadowed']} shadowed answers ({info['disagreed']} differ from the top rung) of "
        f"{info['requests']} requests, {info['accepted_below_top']} accepted below the top"
    )
    if info["certified_ok"]:
        print(
            f"{info['why']}; share of all answers differing from the top rung: {info['risk']:.4f}, "
            f"{1 - args.delta:.0%} upper bound {info['risk_bound']:.4f} (target <= {args.epsilon}); certified; "
            f"the cheap rung keeps {info['still_accepted_share']:.1%} of the answers it accepted"
        )
    else:
        print(f"NOT certified: {info['why']}; the policy is the top rung alone")
    if not info["certified_ok"]:
        print(f"wrote {args.out} (not certified)" if args.out else "nothing written (not certified)")
        return EXIT_NOT_CERTIFIED
    print(f"wrote {args.out}" if args.out else "nothing written: pass --out FILE to save the policy")
    return 0
