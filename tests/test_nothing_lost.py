"""Nothing lost: every batch item comes back with a result whatever it raised, a log that fails never
fails a paid request (the loss is counted and reported), and the log file is safe and follows rotation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from hostile import answer, hostile

from cascade import Cascade, Completion, ConfigError, JsonlSink, MemorySink, OpenAICompatible, RetryPolicy, Rung
from cascade._content import LogContent
from cascade.validators import JsonSchema

MSG = [{"role": "user", "content": "hi"}]
ONCE = RetryPolicy(attempts=1)


class Fn:
    """A custom provider (what users write for their own backends): a plain callable of the request."""

    name = "fn"

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls = 0

    async def complete(self, request: Any) -> Completion:
        self.calls += 1
        out = self.fn(request)
        return out if isinstance(out, Completion) else Completion(text=out, tokens_in=10, tokens_out=5)

    async def aclose(self) -> None:
        return None


def ladder(provider: Any, validators: Any = None) -> list[Rung]:
    return [Rung(name="a", provider=provider, model="m", price_in=1, price_out=1, retry=ONCE, validators=validators)]


def items(n: int) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": f"item {i}"}], "metadata": {"i": i}} for i in range(n)]


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log, parsed strictly (NaN is not JSON)."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return [json.loads(x, parse_constant=no_constant) for x in path.read_text(encoding="utf-8").splitlines() if x]


# -- every item comes back -------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["full", "hash"])
def test_lone_surrogates_in_answers_lose_no_item_and_no_line(tmp_path: Path, content: LogContent) -> None:
    """``"\\ud800"`` is valid JSON but not UTF-8: the review got 0 of 20 results with content logging."""
    body = (
        b'{"choices": [{"message": {"content": "{\\"a\\": \\"x \\ud800 y\\"}"}}], '
        b'"usage": {"prompt_tokens": 3, "completion_tokens": 4}}'
    )
    log = tmp_path / "log.jsonl"
    with hostile(answer(200, body)) as srv:
        c = Cascade(ladder(OpenAICompatible(srv.base_url)), log=log, log_content=content, log_hash_key="k")
        results = c.map_sync(items(20), concurrency=4)
        c.close()
    assert len(results) == 20 and all(r.outcome == "accepted" for r in results)
    assert all("\ud800" in (r.output or "") for r in results)
    written = lines(log)
    assert sum(e["event"] == "request" for e in written) == 20
    if content == "full":
        assert all("\ud800" in e["output"] for e in written if e["event"] == "request")  # escaped, round-trips


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_custom_provider_raising_keyerror_never_shrinks_the_batch(concurrency: int) -> None:
    """3 of 10 results at concurrency 1, a None in the list at 2: the worker died with the KeyError."""

    def fn(request: Any) -> Completion:
        if "3" in request.messages[-1]["content"] or "7" in request.messages[-1]["content"]:
            raise KeyError("usage")
        return Completion(text="ok", tokens_in=10, tokens_out=5)

    with Cascade(ladder(Fn(fn))) as c:
        results = c.map_sync(items(10), concurrency=concurrency)
    assert len(results) == 10 and None not in results
    failed = [r for r in results if r.outcome == "error"]
    assert [r.metadata["i"] for r in failed] == [3, 7]
    for r in failed:
        assert r.error == "KeyError: 'usage'"
        (attempt,) = r.attempts  # the attempt that raised is on the result, with its call counted
        assert attempt.outcome == "error" and attempt.reasons == ["exception"] and attempt.calls == 1
        assert attempt.error is not None
        assert "KeyError" in attempt.error["message"]
    assert [r.output for r in results if r.outcome == "accepted"] == ["ok"] * 8


def test_imap_yields_every_index_once_when_items_raise() -> None:
    def fn(request: Any) -> str:
        if request.messages[-1]["content"].endswith("5"):
            raise RuntimeError("backend exploded")
        return "ok"

    async def run() -> list[int]:
        async with Cascade(ladder(Fn(fn))) as c:
            return sorted([i async for i, _ in c.imap(items(12), concurrency=3)])

    assert asyncio.run(run()) == list(range(12))


def test_an_inputs_iterator_that_raises_is_raised_not_a_short_batch() -> None:
    def inputs() -> Any:
        yield MSG
        raise ValueError("the input file is corrupt")

    with Cascade(ladder(Fn(lambda r: "ok"))) as c, pytest.raises(ValueError, match="corrupt"):
        c.map_sync(inputs(), concurrency=2)


# -- a log that fails ------------------------------------------------------------------------------------------
class Failing:
    """A sink that fails the first ``n`` lines (a disk full for a while, a closed file)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        if self.n > 0:
            self.n -= 1
            raise OSError(28, "No space left on device")
        self.events.append(event)


def test_a_raising_sink_never_turns_a_paid_answer_into_an_exception() -> None:
    sink = Failing(3)
    with Cascade(ladder(Fn(lambda r: "ok")), log=sink) as c, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = c.run_sync(MSG)  # attempt and request lines both fail
        second = c.run_sync(MSG)  # its attempt line fails, its request line is written
    assert first.output == "ok" and first.accepted and first.log_errors == 2
    assert second.output == "ok" and second.log_errors == 1
    assert [str(w.message).split(" (")[0] for w in caught if "log:" in str(w.message)] == [
        "log: a line could not be written"
    ]  # warned once, not per line
    (written,) = sink.events
    assert written["event"] == "request" and written["log_lost"] == 3  # the next line says how many were lost
    assert c.events.lost == 3


def test_a_full_disk_under_the_log_loses_no_result(tmp_path: Path) -> None:
    """A real short write: the log file may not grow past 4 KB (RLIMIT_FSIZE, in a child process). The
    review's batch returned 29 results for 200 items."""
    script = textwrap.dedent(
        f"""
        import json, resource, signal, warnings
        from cascade import Cascade, Completion, Rung, RetryPolicy
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        class Fn:
            name = "fn"
            async def complete(self, request):
                return Completion(text="ok", tokens_in=10, tokens_out=5)
            async def aclose(self):
                pass
        warnings.simplefilter("ignore")
        rung = Rung(name="a", provider=Fn(), model="m", price_in=1, price_out=1, retry=RetryPolicy(attempts=1))
        c = Cascade([rung], log={str(tmp_path / "full.jsonl")!r})
        items = [[{{"role": "user", "content": f"item {{i}}"}}] for i in range(200)]
        results = c.map_sync(items, concurrency=8)
        print(json.dumps({{"results": len(results), "accepted": sum(r.accepted for r in results),
                          "log_errors": sum(r.log_errors for r in results), "lost": c.events.lost}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["results"] == 200 and report["accepted"] == 200
    assert report["log_errors"] == report["lost"] > 0  # every lost line counted, on the results too
    assert os.path.getsize(tmp_path / "full.jsonl") <= 4096
    for line in (tmp_path / "full.jsonl").read_text().splitlines()[:-1]:
        json.loads(line)  # no line glued onto a torn one


def test_a_stdlib_logger_is_accepted_as_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """A ``logging.Logger`` was accepted, then every request raised TypeError."""
    caplog.set_level(logging.INFO, logger="cascade.test")
    with Cascade(ladder(Fn(lambda r: "ok")), log=logging.getLogger("cascade.test")) as c:
        result = c.run_sync(MSG)
    assert result.output == "ok" and result.log_errors == 0
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cascade.test"]
    assert [e["event"] for e in events] == ["attempt", "request"]
    assert caplog.records[-1].cascade_event["request_id"] == result.request_id  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [42, object(), b"log.jsonl"])
def test_log_refuses_what_it_cannot_write_to_at_construction(bad: Any) -> None:
    with pytest.raises(ConfigError, match="log: expected a file path, an EventSink"):
        Cascade(ladder(Fn(lambda r: "ok")), log=bad)


def test_log_refuses_an_unwritable_path_at_construction(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="log: cannot write to"):
        Cascade(ladder(Fn(lambda r: "ok")), log=blocker / "log.jsonl")


# -- the log file ----------------------------------------------------------------------------------------------
def test_a_symlink_planted_at_the_log_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "somewhere-else"
    target.write_text("")
    (tmp_path / "log.jsonl").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        JsonlSink(tmp_path / "log.jsonl")
    assert target.read_text() == ""


def test_an_existing_log_readable_by_others_is_tightened(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"event": "old"}\n')
    log.chmod(0o666)
    sink = JsonlSink(log)
    sink.emit({"event": "new"})
    sink.close()
    assert log.stat().st_mode & 0o777 == 0o600
    assert [e["event"] for e in lines(log)] == ["old", "new"]


def test_someone_elses_log_readable_by_others_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file owned by another user needs root")
    log = tmp_path / "log.jsonl"
    log.write_text("")
    log.chmod(0o644)
    os.chown(log, 12345, 12345)
    with pytest.raises(ConfigError, match="belongs to uid 12345"):
        JsonlSink(log)


def test_rename_rotation_is_followed(tmp_path: Path) -> None:
    """After ``mv log log.1`` the sink kept writing into log.1 (WatchedFileHandler reopens)."""
    log = tmp_path / "log.jsonl"
    sink = JsonlSink(log)
    for i in range(5):
        sink.emit({"event": "x", "i": i})
    log.rename(tmp_path / "log.jsonl.1")
    for i in range(5, 8):
        sink.emit({"event": "x", "i": i})
    sink.close()
    assert [e["i"] for e in lines(tmp_path / "log.jsonl.1")] == [0, 1, 2, 3, 4]
    assert [e["i"] for e in lines(log)] == [5, 6, 7]
    assert log.stat().st_mode & 0o777 == 0o600


def test_copytruncate_rotation_loses_no_line(tmp_path: Path) -> None:
    """Lines written between the tool's copy and its truncate were in neither file (11 of 300 lost)."""
    log = tmp_path / "log.jsonl"
    sink = JsonlSink(log)
    for i in range(5):
        sink.emit({"event": "x", "i": i})
    shutil.copyfile(log, tmp_path / "log.jsonl.1")  # logrotate copytruncate: copy ...
    for i in range(5, 7):
        sink.emit({"event": "x", "i": i})  # ... the batch goes on ...
    with open(log, "r+") as f:
        f.truncate(0)  # ... truncate
    for i in range(7, 9):
        sink.emit({"event": "x", "i": i})
    sink.close()
    assert b"\0" not in log.read_bytes()  # no hole where the old end was
    assert [e["i"] for e in lines(tmp_path / "log.jsonl.1")] == [0, 1, 2, 3, 4]
    assert [e["i"] for e in lines(log)] == [5, 6, 7, 8]


def test_a_batch_survives_a_rename_rotation_of_its_log_and_resumes_across_it(tmp_path: Path) -> None:
    """Resume found no line of the rotated file: 300 of 300 items re-run and re-paid in the review."""
    log = tmp_path / "batch.jsonl"
    provider = Fn(lambda r: "ok")
    with Cascade(ladder(provider), log=log) as c:
        c.map_sync(items(10), resume_from=log)
        log.rename(tmp_path / "batch.jsonl.1")  # logrotate, between two runs
        c.map_sync(items(20), resume_from=log)
    assert provider.calls == 20  # 10, then the 10 new ones: nothing twice
    with Cascade(ladder(provider), log=log) as c:
        again = c.map_sync(items(20), resume_from=log)
    assert provider.calls == 20 and all(r.resumed for r in again)


def test_resume_refuses_answers_from_a_changed_ladder_or_checks(tmp_path: Path) -> None:
    """6,000 results from rungs no longer in the ladder were reused in silence."""
    log = tmp_path / "batch.jsonl"
    with Cascade(ladder(Fn(lambda r: '{"a": 1}')), log=log) as c:
        c.map_sync(items(6), resume_from=log)
    changed_model = [Rung(name="a", provider=Fn(lambda r: "x"), model="m2", price_in=1, price_out=1)]
    changed_check = ladder(Fn(lambda r: '{"a": 1}'), validators=JsonSchema({"type": "object"}))
    for rungs in (changed_model, changed_check):
        with Cascade(rungs, log=log) as c, pytest.raises(ConfigError, match="another ladder or other checks"):
            c.map_sync(items(6), resume_from=log)
    rerun = Fn(lambda r: '{"a": 1}')
    with Cascade(ladder(rerun, validators=JsonSchema({"type": "object"})), log=log) as c:
        results = c.map_sync(items(6), resume_from=log, resume_changed="rerun")
    assert rerun.calls == 6 and not any(r.resumed for r in results)
    with Cascade(changed_model, log=log) as c:
        reused = c.map_sync(items(6), resume_from=log, resume_changed="reuse")
    assert all(r.resumed for r in reused)


def test_an_unchanged_ladder_resumes_in_another_process(tmp_path: Path) -> None:
    """The fingerprint is stable across processes (no memory addresses in it)."""
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[2])
        from test_nothing_lost import Fn, ladder, items
        from cascade import Cascade
        from cascade.validators import check

        @check(name="short")
        def short(c):
            return len((lambda t: t)(c.text)) < 10

        with Cascade(ladder(Fn(lambda r: "ok"), validators=short), log=sys.argv[1]) as c:
            print(sum(r.resumed for r in c.map_sync(items(4), resume_from=sys.argv[1])))
        """
    )
    here = str(Path(__file__).parent)
    runs = [
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "b.jsonl"), here], capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["0", "4"], [r.stderr[-500:] for r in runs]


def test_memory_sink_still_sees_every_event() -> None:
    sink = MemorySink()
    with Cascade(ladder(Fn(lambda r: "ok")), log=sink) as c:
        c.map_sync(items(3))
    assert len(sink.of("request")) == 3 and all("fingerprint" in e for e in sink.of("request"))
