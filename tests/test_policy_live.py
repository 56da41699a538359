"""One policy, replay and live alike: `cascade tune` on recorded MMLU answers writes a policy; the same
policy over the ReplayProvider and over a real HTTP server scripted with the recorded answers and
logprobs takes the same decision on every item, and reproduces `cascade eval --policy`'s figures."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, OpenAICompatible
from cascade._cli import main
from cascade._errors import ConfigError
from cascade.replay import Policy, Record, ReplayProvider, load_dataset
from cascade.replay._data import default_data_dir, load_catalog
from cascade.testing import Reply, TestServer

LADDER = ["llama3.2-3b", "gpt-4o-mini", "llama3.1-405b"]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 train and 80 test MMLU records (unique prompts) with the catalog's prices."""
    data = default_data_dir()
    if not (data / "mmlu.jsonl.gz").exists():
        pytest.skip(f"recorded datasets not found at {data}: set CASCADE_DATA_DIR or put shared/ beside the clone")
    ds = load_dataset("mmlu", data)
    seen: set[str] = set()
    keep: dict[str, list[Record]] = {"train": [], "test": []}
    for r in ds.records:
        key = json.dumps(r.messages)
        if key in seen or len(keep[r.split]) >= (150 if r.split == "train" else 80):
            continue
        seen.add(key)
        keep[r.split].append(r)
    out = tmp_path_factory.mktemp("mmlu_small")
    with gzip.open(out / "mmlu_small.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in keep["train"] + keep["test"]:
            fh.write(r.model_dump_json() + "\n")
    entry = load_catalog(data)["datasets"]["mmlu"]
    catalog = {"format": "recorded responses", "format_version": 1, "datasets": {"mmlu_small": entry}}
    (out / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    return out / "mmlu_small.jsonl.gz"


def _tune(small: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    args = ["tune", str(small), "--ladder", ",".join(LADDER), "--validator", "confidence", "--method", "ltt"]
    code = main([*args, "--epsilon", "0.12", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    return text


def _responder(records: list[Record], asked: dict[str, list[bool]]) -> Any:
    by_prompt = {json.dumps([m["content"] for m in r.messages]): r for r in records}

    def answer(body: dict[str, Any]) -> Reply:
        rec = by_prompt[json.dumps([m["content"] for m in body["messages"]])]
        entry = rec.responses[body["model"]]
        s = entry.samples[0]
        asked.setdefault(body["model"], []).append(body.get("logprobs") is True)
        lps: list[tuple[str, float, dict[str, float]]] | None
        lps = [(s.text or "", s.logprob, {})] if s.logprob is not None else None
        return Reply(content=s.text or "", tokens_in=entry.tokens_in, tokens_out=entry.tokens_out, logprobs=lps)

    return answer


async def _live(cascade: Cascade, records: list[Record], extra: bool) -> list[tuple[int, bool, float]]:
    """(answering rung, correct, cost) per record, through the real engine."""
    models = [r.name for r in cascade.ladder.rungs]
    items = [{"messages": list(r.messages), **({"extra": {"replay_id": r.id}} if extra else {})} for r in records]
    try:
        results = await cascade.map(items, concurrency=8)
    finally:
        await cascade.aclose()
    out = []
    for rec, res in zip(records, results, strict=True):
        assert res.answered_by is not None, res.error
        model = res.answered_by
        out.append((models.index(model), bool(rec.responses[model].samples[0].correct), res.cost_usd))
    return out


def test_tuned_policy_runs_live_and_reproduces_eval(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.json"
    printed = _tune(small, path, capsys)
    policy = Policy.load(path)
    assert policy.models[-1] == LADDER[-1] and len(policy.models) >= 2
    assert policy.answer == {"kind": "choice", "labels": ["A", "B", "C", "D"]}
    assert "logprobs" in policy.signals
    ds = load_dataset(small)
    test = ds.split("test")

    assert main(["eval", str(small), "--policy", str(path), "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    simulated = [(j, o.correct, c) for j, o, c in map(policy.decide, test)]
    assert len({j for j, _, _ in simulated}) >= 2, "the policy must both accept and escalate on this split"
    replayed = asyncio.run(
        _live(Cascade.from_policy(path, providers=ReplayProvider(ds), on_exhausted="best_effort"), test, True)
    )
    asked: dict[str, list[bool]] = {}
    with TestServer() as srv:
        srv.default(Reply(status=500))
        for m in policy.models:
            srv.responder(m, _responder(test, asked))
        # the snippet `cascade tune` printed, run as printed (only the server's address changed)
        snippet = re.search(r"from cascade import .*?\)\)\n", printed, re.S)
        assert snippet is not None, printed
        scope: dict[str, Any] = {}
        exec(snippet.group(0).replace("http://127.0.0.1:8000/v1", srv.base_url), scope)
        live_cascade: Cascade = scope["cascade"]
        assert [r.name for r in live_cascade.ladder.rungs] == policy.models
        live = asyncio.run(_live(Cascade.from_policy(path, providers=OpenAICompatible(srv.base_url)), test, False))
        first = asyncio.run(_live(live_cascade, test[:5], False))
        assert srv.errors == []

    assert [j for j, _, _ in replayed] == [j for j, _, _ in simulated]
    assert [j for j, _, _ in live] == [j for j, _, _ in simulated]
    assert first == live[:5]
    assert [c for _, c, _ in live] == [c for _, c, _ in simulated]
    for got in (replayed, live):
        assert [x[2] for x in got] == pytest.approx([x[2] for x in simulated], rel=1e-6)
    n = len(test)
    assert report["accuracy"] == pytest.approx(sum(c for _, c, _ in live) / n, abs=1e-12)
    assert report["cost_per_query"] == pytest.approx(sum(x[2] for x in live) / n, rel=1e-6)
    # exactly the signals the policy reads: logprobs from the cheaper rungs, nothing from the top
    for m in policy.models[:-1]:
        assert asked[m] and all(asked[m])
    assert asked.get(policy.models[-1]) and not any(asked[policy.models[-1]])


def test_a_rung_weighing_earlier_answers_reads_them_from_the_history(small: Path) -> None:
    """Change only the cheapest rung's answer: the middle rung's live score must follow it."""
    from cascade.replay._answer_rule import infer_answer_rule
    from cascade.replay._fit import Table, build_family

    ds = load_dataset(small)
    table = Table(ds, ds.split("train"), "confidence")
    fam = build_family(table, LADDER, [1, 1, 1], table.column(LADDER[-1]), "loss")
    pol = Policy(ds.name, "confidence", fam.rungs, 0.5, answer=infer_answer_rule(ds, LADDER)[0])
    assert "history" in pol.signals
    assert len(pol.rungs[1].w) == 3 and pol.rungs[1].w[2] > 0  # agreeing with the cheapest raises the score
    rec = next(r for r in ds.split("test") if len({r.responses[m].samples[0].answer for m in LADDER[:2]}) == 1)
    flipped = rec.model_copy(deep=True)
    first = flipped.responses[LADDER[0]].samples[0]
    other = next(x for x in "ABCD" if x != first.answer)
    object.__setattr__(first, "text", other)
    object.__setattr__(first, "answer", other)
    scores: list[float] = []
    for r in (rec, flipped):
        one = type(ds)(ds.name, [r], ds.models, ds.catalog)
        cascade = Cascade.from_policy(pol, providers=ReplayProvider(one), on_exhausted="best_effort")
        res = cascade.run_sync(list(r.messages), extra={"replay_id": r.id})
        cascade.close()
        score = next(v.score for a in res.attempts if a.rung == LADDER[1] for v in a.verdicts)
        assert score is not None
        scores.append(score)
    assert scores[0] > scores[1]


def test_tune_from_log_refits_the_threshold_on_shadowed_traffic(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cascade import Shadow
    from cascade.replay._answer_rule import infer_answer_rule
    from cascade.replay._fit import Table, build_family, clopper_pearson_upper

    ds = load_dataset(small)
    pair = ["gpt-4o-mini", "llama3.1-405b"]
    table = Table(ds, ds.split("train"), "confidence")
    fam = build_family(table, pair, [1, 1], table.column(pair[-1]), "loss")
    pol = Policy(ds.name, "confidence", fam.rungs, 0.5, answer=infer_answer_rule(ds, pair)[0])
    path, log = tmp_path / "p.json", tmp_path / "traffic.jsonl"
    pol.save(path)
    records = ds.records  # all 230 as "traffic"
    cascade = Cascade.from_policy(path, providers=ReplayProvider(ds), log=str(log), shadow=Shadow(rate=1.0, seed=3))
    results = asyncio.run(_run(cascade, records))
    accepted = [r for r, res in zip(records, results, strict=True) if res.answered_by == pair[0]]
    assert 0 < len(accepted) < len(records)

    out = tmp_path / "refit.json"
    code = main(["tune", "--from-log", str(log), "--policy", str(path), "--epsilon", "0.1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    new = Policy.load(out)
    assert new.threshold >= pol.threshold and new.models == pair and new.fit["refit"]["shadowed"] == len(accepted)
    # the certificate, recomputed from the recorded answers: the share of all answers differing from the top's
    top_of = {r.id: r.responses[pair[1]].samples[0].answer for r in records}
    scores = {r.id: fam.rungs[0].probability(*_raw(r, pair[0])) for r in accepted}
    differ = sum(
        1 for r in accepted if scores[r.id] >= new.threshold and r.responses[pair[0]].samples[0].answer != top_of[r.id]
    )
    bound = len(accepted) / len(records) * clopper_pearson_upper(differ, len(accepted), 0.1)
    assert new.fit["refit"]["risk_bound"] == pytest.approx(bound) and bound <= 0.1
    assert "certified" in text


def test_tune_from_log_refits_a_three_rung_policy(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every rung below the top is audited; a request the middle rung no longer accepts goes to the top
    (agrees), one the cheapest no longer accepts goes to a rung the audit never saw (counted as differing)."""
    from cascade import Shadow
    from cascade.replay._answer_rule import infer_answer_rule
    from cascade.replay._fit import THRESHOLDS, Table, build_family, clopper_pearson_upper

    ds = load_dataset(small)
    table = Table(ds, ds.split("train"), "confidence")
    fam = build_family(table, LADDER, [1, 1, 1], table.column(LADDER[-1]), "loss")
    pol = Policy(ds.name, "confidence", fam.rungs, 0.5, answer=infer_answer_rule(ds, LADDER)[0])
    path, log = tmp_path / "three.json", tmp_path / "traffic.jsonl"
    pol.save(path)
    records = ds.records
    cascade = Cascade.from_policy(path, providers=ReplayProvider(ds), log=str(log), shadow=Shadow(rate=1.0, seed=5))
    results = asyncio.run(_run(cascade, records))
    by = {r.id: res.answered_by for r, res in zip(records, results, strict=True)}
    assert {by[r.id] for r in records} == set(LADDER)  # every rung answers some requests

    below = [r for r in records if by[r.id] != LADDER[-1]]
    # the certificate, recomputed: agreement from the recorded answers, each rung's score from its attempt
    score = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if e.get("event") == "attempt" and e.get("outcome") == "accepted" and e["rung"] != LADDER[-1]:
            score[e["request_id"]] = next(v["score"] for v in e["verdicts"] if v["validator"].startswith("policy_"))
    ids = {r.id: res.request_id for r, res in zip(records, results, strict=True)}
    thresholds = [float(t) for t in THRESHOLDS if t >= pol.threshold]

    def bound(t: float) -> float:
        differ = 0
        for r in below:
            s, rung = score[ids[r.id]], by[r.id]
            same = r.responses[rung].samples[0].answer == r.responses[LADDER[-1]].samples[0].answer
            differ += (s >= t and not same) or (s < t and rung == LADDER[0])  # the cheapest: unseen rungs next
        return len(below) / len(records) * clopper_pearson_upper(differ, len(below), 0.1 / len(thresholds))

    # a target the policy's own threshold misses and a stricter one meets
    epsilon = min(bound(t) for t in thresholds if t > pol.threshold) + 1e-9
    assert bound(pol.threshold) > epsilon
    out = tmp_path / "refit.json"
    code = main(["tune", "--from-log", str(log), "--policy", str(path), "--epsilon", repr(epsilon), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    new = Policy.load(out)
    assert new.models == LADDER and new.fit["refit"]["shadowed"] == len(below)
    laxest = min(t for t in thresholds if bound(t) <= epsilon)
    assert new.threshold == pytest.approx(laxest) and new.threshold > pol.threshold
    assert new.fit["refit"]["risk_bound"] == pytest.approx(bound(laxest))


def _raw(r: Record, model: str) -> tuple[float | None, tuple[float, ...] | None]:
    from cascade.replay._policy import answer_key, features

    s = r.responses[model].samples[0]
    return features("confidence", answer_key(s.answer), s.confidence)


async def _run(cascade: Cascade, records: list[Record]) -> list[Any]:
    try:
        return await cascade.map([{"messages": list(r.messages), "extra": {"replay_id": r.id}} for r in records])
    finally:
        await cascade.aclose()


def _two_rung_policy(**extra: Any) -> dict[str, Any]:
    rungs = [{"model": "cheap"}, {"model": "top"}]
    return {"format": "cascade-policy", "version": 3, "dataset": "d", "validator": "confidence", "rungs": rungs,
            "threshold": 0.5, **extra}  # fmt: skip


def test_a_policy_file_says_how_its_confidence_is_measured_and_a_bad_reading_is_refused() -> None:
    labels = {"label_field": "label", "labels": ["yes", "no"]}
    assert Policy.from_json(_two_rung_policy(confidence=labels)).confidence == labels
    assert Policy.from_json(_two_rung_policy()).confidence == {"aggregate": "mean"}  # versions 1-2: the mean
    with pytest.raises(ConfigError, match=r"^confidence: expected a dict of Confidence options .*'temperature'"):
        Policy.from_json(_two_rung_policy(confidence={"temperature": 1}))


def test_the_live_check_measures_confidence_as_the_policy_says(server: TestServer) -> None:
    """ "nope" as two tokens at p=0.7 and p=1: their mean reads ~0.84, the least sure token 0.7. The
    policy's reading decides which the check compares with its threshold (0.8)."""
    tokens = [("no", math.log(0.7), {"yes": math.log(0.3)}), ("pe", 0.0, {})]
    server.responder("cheap", lambda body: Reply(content="nope", logprobs=tokens))
    server.responder("top", lambda body: Reply(content="yes"))
    identity = [{"model": "cheap", "identity": True}, {"model": "top", "identity": True}]

    def answered_by(**extra: Any) -> str | None:
        policy = Policy.from_json(_two_rung_policy(rungs=identity, threshold=0.8, **extra))
        cascade = Cascade.from_policy(policy, providers=OpenAICompatible(server.base_url))
        return cascade.run_sync([{"role": "user", "content": "?"}]).answered_by

    assert answered_by() == "cheap"  # versions 1-2 and no reading: the mean over the tokens, ~0.84
    assert answered_by(confidence={"aggregate": "min"}) == "top"  # the least sure token: 0.7 < 0.8
