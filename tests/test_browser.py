"""The report, the HTML tables and the MLflow UI as a reader sees them: headless Chromium.

A finished tiny run (the session's ``tiny_run``) is opened in Debian's ``chromium``,
driven by Playwright with that binary (Playwright's own browser downloads are never
used). Every result the Snakemake report lists is opened as a reader would (category,
subcategory, the eye button) and must show: an image that loads with a non-zero size,
or an HTML page whose tables all have rows; no console error or uncaught exception on
the way. ``make ui``'s server is started on the same run, its REST API must agree with
the tidy CSVs, and its runs page must list every run.

Skipped, with the reason, where no Chromium is installed; ``make test-browser``
installs it (apt, as root) and runs this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_snakemake

CHROMIUM = os.environ.get("CROSSMOD_CHROMIUM") or shutil.which("chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium (Debian: apt-get install chromium; `make test-browser` does it)",
    ),
]


class Watch:
    """Everything a page complains about: console errors, uncaught exceptions, HTTP >= 400."""

    def __init__(self, page, ignore: tuple[str, ...] = ()) -> None:
        self.problems: list[str] = []
        self.ignore = ignore
        page.on("console", lambda m: self._add(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self._add(f"uncaught: {e}"))
        page.on("response", self._response)

    def _response(self, response) -> None:
        if response.status >= 400:
            self._add(f"HTTP {response.status}: {response.url}")

    def _add(self, problem: str) -> None:
        if not any(pattern in problem for pattern in self.ignore):
            self.problems.append(problem)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def report(tiny_run) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    config = str(REPO / ".test/config.yaml")
    run_snakemake(
        tiny_run.workdir, "--configfile", config, "--report", "results/report.html", env=env
    )
    return tiny_run.workdir / "results/report.html"


def table_rows(frame) -> list[int]:
    """Rows of each table of a page or frame (header row included)."""
    return frame.eval_on_selector_all("table", "ts => ts.map(t => t.querySelectorAll('tr').length)")


def broken_images(frame) -> list[str]:
    """Images of a page or frame that did not load or have no size."""
    return frame.eval_on_selector_all(
        "img",
        "is => is.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))"
        ".map(i => (i.currentSrc || i.src).slice(0, 80))",
    )


FOLDERS = "div.p-3 ul li a"
"""A folder's entries (subcategories) in the report's menu, breadcrumbs excluded."""
EYES = "a[iconname=eye]"
"""A result's "show" button."""


def open_folder(page, url: str, trail: list[str]) -> None:
    """Load the report afresh and click down the category trail, waiting for each menu."""
    page.goto("about:blank")
    page.goto(url, wait_until="load")
    page.locator(FOLDERS).first.wait_for()
    for name in trail:
        exact = re.compile(f"^{re.escape(name)}$")
        page.locator("li a").filter(has_text=exact).first.click()
        page.locator(f"{EYES}, {FOLDERS}").first.wait_for()


def result_folders(page) -> list[str]:
    """On the report's start page: the result categories (the items after RESULTS)."""
    items = page.eval_on_selector_all("li", "ls => ls.map(l => l.innerText.trim())")
    return items[items.index("RESULTS") + 1 :]


def walk(page, url: str, trail: list[str]) -> Iterator[tuple[list[str], int]]:
    """(trail, i) of every result: folders are clicked into until eye buttons show."""
    open_folder(page, url, trail)
    eyes = page.locator(EYES).count()
    if eyes:
        for i in range(eyes):
            yield trail, i
        return
    names = result_folders(page) if not trail else page.locator(FOLDERS).all_inner_texts()
    for name in [n.strip() for n in names if n.strip()]:
        yield from walk(page, url, [*trail, name])


def test_report_shows_every_result(report, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    url = report.as_uri()
    page.goto(url, wait_until="load")
    page.screenshot(path=str(report.with_suffix(".png")))
    assert report.with_suffix(".png").stat().st_size > 10_000

    shown: dict[str, str] = {}
    for trail, i in list(walk(page, url, [])):
        open_folder(page, url, trail)
        row = page.locator("tr", has=page.locator(EYES)).nth(i)
        name = row.locator("td").first.inner_text().strip()
        row.locator(EYES).click()
        if name.endswith(".html"):
            frame_element = page.locator("iframe").last
            frame_element.wait_for(timeout=10_000)
            frame = frame_element.element_handle().content_frame()
            frame.wait_for_load_state("load")
            rows = table_rows(frame)
            assert rows and min(rows) >= 2, f"{name}: tables without rows {rows}"
            assert not broken_images(frame), f"{name}: {broken_images(frame)}"
            shown[name] = "html"
        else:
            image = page.locator(f"img[src*='{Path(name).name}']").last
            image.wait_for(timeout=10_000)
            size = image.evaluate("i => i.complete ? [i.naturalWidth, i.naturalHeight] : [0, 0]")
            assert min(size) > 0, f"{name}: image not loaded ({size})"
            shown[name] = "image"
    page.close()

    # Every category of the report was reached, each with its results.
    folders = {name.split("/")[1] for name in shown}
    assert {"tables", "subjects", "captions"} <= folders, sorted(shown)
    assert sum(kind == "image" for kind in shown.values()) >= 4  # examples, top3, ...
    assert any(name.endswith("table3_top3.html") for name in shown)
    assert not watch.problems, watch.problems


def test_html_tables_render_with_their_rows(tiny_run, browser):
    results = tiny_run.workdir / "results"
    pages = sorted(p for p in results.rglob("*.html") if p.name != "report.html")
    assert len(pages) >= 15  # 11 retrieval tables, identity, DEPER, captions
    page = browser.new_page()
    watch = Watch(page)
    for path in pages:
        page.goto(path.as_uri(), wait_until="load")
        rows = table_rows(page)
        assert rows and min(rows) >= 2, f"{path}: tables without rows {rows}"
        assert not broken_images(page), f"{path}: {broken_images(page)}"
    page.close()
    assert not watch.problems, watch.problems


@pytest.fixture(scope="module")
def ui(tiny_run) -> Iterator[str]:
    """``make ui``'s command on the finished run; yields the URL it prints."""
    server = subprocess.Popen(
        [sys.executable, "-m", "crossmod.tracking.ui", "--results", "results"],
        cwd=tiny_run.workdir,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    try:
        line = server.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        assert match, f"make ui printed {line!r}"
        yield match.group(0)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0  # SIGTERM stops the server and exits cleanly


def api(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_mlflow_ui_serves_the_runs_the_tables_came_from(tiny_run, ui, browser):
    results = tiny_run.workdir / "results"
    experiments = api(ui, "experiments/search?max_results=100")["experiments"]
    (experiment,) = [e for e in experiments if e["name"] == "tiny-coco"]
    runs = api(
        ui, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 1000}
    )["runs"]
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}

    def flat(run: dict, key: str) -> dict:
        return {item["key"]: item["value"] for item in run["data"].get(key, [])}

    # Every network's run holds the test metrics the tidy metrics.csv reports.
    by_network = {}
    for run in runs:
        tags = flat(run, "tags")
        if "network" in tags:
            by_network[(int(tags["split"]), tags["network"])] = run
    metrics = pd.read_csv(results / "metrics.csv")
    metrics = metrics[metrics["method"] != "ours"]  # OURS combines networks: no run of its own
    assert len(metrics) > 0
    assert set(zip(metrics["split"], metrics["network"], strict=True)) <= set(by_network)
    for row in metrics.itertuples():
        run = by_network[(row.split, row.network)]
        logged = flat(run, "metrics")
        assert logged[f"test_{row.task}_top3"] == pytest.approx(row.top3, abs=1e-9), row
        assert logged[f"test_{row.task}_top1"] == pytest.approx(row.top1, abs=1e-9), row
    # DEPER's runs hold the identification in results/subjects.csv.
    subjects = pd.read_csv(results / "subjects.csv")
    for row in subjects[subjects["method"] == "DEPER"].itertuples():
        logged = flat(by_network[(row.split, "deper")], "metrics")
        assert logged[f"test_S{row.shots}_top1"] == pytest.approx(row.top1, abs=1e-9), row
        params = flat(by_network[(row.split, "deper")], "params")
        assert params["deper.steps"] == "20"  # the tiny config's schedule

    # The UI itself: the experiment's runs page lists exactly the runs the API holds.
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    # MLflow's UI asks who the user is; without authentication that answers 404.
    watch = Watch(page, ignore=("users/current", "Failed to load resource"))
    page.goto(f"{ui}/#/experiments/{experiment['experiment_id']}/runs", wait_until="load")
    counter = page.get_by_text(re.compile(r"^[1-9]\d* matching runs$"))  # loaded, not 0
    counter.wait_for(timeout=60_000)
    page.screenshot(path=str(results / "mlflow_ui.png"))
    assert counter.inner_text() == f"{len(runs)} matching runs", (counter.inner_text(), len(runs))
    page.screenshot(path=str(results / "mlflow_ui.png"))
    page.close()
    assert not [p for p in watch.problems if p.startswith("uncaught")], watch.problems
