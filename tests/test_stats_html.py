"""``cascade stats --html`` in a real headless Chromium (Debian's ``chromium``, installed by ``make test-deps``):
the page renders with nothing on the console (no script error, no blocked fetch), shows the numbers that
``--json`` gives, draws the timeline's runs, and a screenshot of it is what the docs show.

``CASCADE_WRITE_DOCS_IMG=1`` also copies the screenshot to ``docs/img/stats-report.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from logbuilder import realistic_log

from cascade._cli import main

START = 1_764_115_200.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img" / "stats-report.png"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (make test-deps installs Debian's chromium; it could not here)")


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *extra, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 120 s: {' '.join(cmd)}")


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to the console (errors, CSP violations), as Chromium logs it to stderr."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Figures(HTMLParser):
    """Collects the text of every element with a ``data-json`` attribute, and counts SVG shapes by class."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[tuple[str, str]] = []
        self.classes: dict[str, int] = {}
        self._open: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("class"):
            self.classes[f"{tag}.{a['class']}"] = self.classes.get(f"{tag}.{a['class']}", 0) + 1
        if a.get("data-json") is not None:
            self._open.append((tag, str(a["data-json"]), []))

    def handle_data(self, data: str) -> None:
        for _tag, _path, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            _tag, path, parts = self._open.pop()
            self.figures.append((path, "".join(parts)))


def resolve(data: Any, path: str) -> Any:
    """``by_rung.small.cost_usd`` in the JSON (``\\.`` is a dot inside a key)."""
    keys, cur, i = [], "", 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path):
            cur += path[i + 1]
            i += 2
            continue
        if path[i] == ".":
            keys.append(cur)
            cur = ""
        else:
            cur += path[i]
        i += 1
    keys.append(cur)
    for k in keys:
        data = data[int(k)] if isinstance(data, list) else data[k]
    return data


def check_shown(path: str, shown: str, value: Any) -> None:
    """The text on the page is the JSON value, at the precision shown."""
    text = shown.strip()
    if isinstance(value, bool):
        assert text == ("yes" if value else "no"), (path, shown, value)
        return
    if value is None:
        assert text == "-", (path, shown)
        return
    percent = text.endswith("%")
    scale = 100 if percent and not path.endswith("_pct") else 1
    if text.startswith((">", "<")):  # ">99.9%": a share that must not round to 100%
        bound = float(text[1:].rstrip("%"))
        assert (value * scale > bound) if text[0] == ">" else (value * scale < bound), (path, shown, value)
        return
    number = text.rstrip("%").lstrip("$").replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    assert abs(float(number) - value * scale) <= 0.5 * 10**-decimals + 1e-9, (path, shown, value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("html")
    log = realistic_log().write(tmp / "real.jsonl")
    page = tmp / "report.html"
    args = ["stats", str(log), "--compare", "1h", "--until", str(START + 7200), "--by", "metadata.task,rung"]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--json", "--html", str(page)]) == 0
    return page, json.loads(out.getvalue())


def test_the_page_renders_without_console_errors_and_shows_the_json_numbers(
    tmp_path: Path, report: tuple[Path, dict[str, Any]]
) -> None:
    page, data = report
    run = chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "</html>" in run.stdout and "data-json" in run.stdout
    assert console_lines(run.stderr) == []

    dom = Figures()
    dom.feed(run.stdout)
    paths = {p for p, _ in dom.figures}
    assert len(dom.figures) >= 80
    prefixes: tuple[str, ...] = (
        "requests",
        "cost_usd",
        "savings_pct",
        "by_rung.small.",
        "by_rung.small.scores.confidence.p50",
    )
    prefixes += ("compare.findings.", "by_metadata.groups.chat.", "slices.rows.", "by_rung.medium.reasons.")
    for prefix in prefixes:
        assert any(p.startswith(prefix) for p in paths), prefix
    for path, shown in dom.figures:
        check_shown(path, shown, resolve(data, path))

    from cascade.stats._timeline import runs

    lines = sum(
        1
        for tl in (data["timeline"], data["timeline_by"])
        for s in tl["series"]
        for r in runs(s["points"], tl["bucket_s"])
        if len(r) > 1
    )
    assert dom.classes.get("polyline.run") == lines and dom.classes.get("polygon.band", 0) >= lines
    assert run.stdout.count('class="summary"') == sum(e["flagged"] for e in data["compare"]["explanations"])


def test_the_console_check_sees_a_page_that_fetches_or_runs_script(
    tmp_path: Path, report: tuple[Path, dict[str, Any]]
) -> None:
    """The control: the same page with an external image and a script logs console lines (blocked by
    its Content-Security-Policy), so an empty console above means a clean page, not a deaf check."""
    page, _ = report
    bad = tmp_path / "bad.html"
    bad.write_text(page.read_text().replace("</body>", '<img src="http://127.0.0.1:9/x.png"><script>1</script></body>'))
    run = chromium(tmp_path, bad.as_uri(), "--dump-dom")
    lines = console_lines(run.stderr)
    assert any("img-src" in line for line in lines) and any("script" in line for line in lines), run.stderr[-2000:]


def test_a_screenshot_of_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs' picture: the realistic log, drift compared, sliced by task (``docs/guides/operations.md``)."""
    monkeypatch.chdir(tmp_path)
    realistic_log().write(tmp_path / "escalations.jsonl")
    until = str(START + 7200)
    args = ["stats", "escalations.jsonl", "--compare", "1h", "--until", until, "--by", "metadata.task"]
    assert main([*args, "--html", "report.html", "--plain"]) == 0
    shot = tmp_path / "stats-report.png"
    run = chromium(tmp_path, (tmp_path / "report.html").as_uri(), f"--screenshot={shot}", "--window-size=1040,1500")
    assert run.returncode == 0 and console_lines(run.stderr) == [], run.stderr[-2000:]
    blob = shot.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(blob[16:20], "big") == 1040
    assert len(blob) > 50_000  # charts and tables, not a blank page
    if os.environ.get("CASCADE_WRITE_DOCS_IMG") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG)
