"""The page in a real headless Chromium (Debian's `chromium`, driven by playwright): a live toy search
with ``--serve``, a person's child trained, a rejected child's reasons shown; a 1,000-node tree drawn."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchmgr.serve import ServeSettings, start_service
from searchmgr.serve.synthetic import synthetic_run

playwright = pytest.importorskip("playwright.sync_api", reason="needs the serve extra (playwright)")
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS_FIGURE = Path(__file__).parents[2] / "docs" / "figures" / "serve.png"
NOTE = "<b>from the browser test</b>"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def wait_for_url(log: Path, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"searchmgr serve: (http://127\.0\.0\.1:\d+/)", log.read_text())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            raise AssertionError(f"explore --serve exited early:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"no service URL printed:\n{log.read_text()}")


def test_live_search_manual_child_and_rejection(browser, tmp_path):
    # 1. a toy search with --serve (k_max high so it keeps training until the page stops it)
    log = tmp_path / "explore.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "searchmgr", "explore", "task=toy", "preset=smoke",
                                 f"out={tmp_path / 'toy'}", "budget.steps=4000", "uct.k_max=16", "--serve",
                                 "--port", "0"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = wait_for_url(log, proc)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)  # for wait_for_function
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url)
        # 2. nodes appear while it trains
        page.wait_for_function("document.querySelectorAll('#tree .node').length >= 4", timeout=60_000)
        first = page.locator("#tree .node").count()
        page.wait_for_function(f"document.querySelectorAll('#tree .node').length > {first}", timeout=60_000)
        page.screenshot(path=str(tmp_path / "1-live.png"), full_page=True)
        # pause, so the child is seen queued before it trains
        page.click("#pause")
        page.wait_for_function("document.getElementById('run-status').textContent === 'paused'", timeout=30_000)
        page.click("#tree .node[data-id='2'] .mark")
        page.wait_for_selector("#branch:not([hidden]) #knob-inputs input[name=lr]")
        # 4. an out-of-bounds child: the verifier's reason is shown
        page.fill("#knob-inputs input[name=lr]", "0.5")
        page.click("#child-submit")
        page.wait_for_selector("#child-msg .reason")
        reasons = page.locator("#child-msg").inner_text()
        assert "HTTP 422" in reasons and "out_of_bounds" in reasons and "lr" in reasons
        page.screenshot(path=str(tmp_path / "2-rejected.png"), full_page=True)
        # 3. an admissible child: queued (202), a pending human node, trained after resume
        page.fill("#knob-inputs input[name=lr]", page.get_attribute("#knob-inputs input[name=lr]", "data-original"))
        page.fill("#knob-inputs input[name=dropout]", "0.08")
        page.fill("#child-note", NOTE)
        page.click("#child-submit")
        page.wait_for_function("document.getElementById('child-msg').textContent.includes('queued as command')")
        page.wait_for_selector("#tree .node[data-source=human]", timeout=30_000)
        assert page.get_attribute("#tree .node[data-source=human]", "data-status") == "pending"
        page.click("#resume")
        page.wait_for_selector("#tree .node[data-source=human][data-status=done], "
                               "#tree .node[data-source=human][data-status=pruned]", timeout=60_000)
        page.click("#tree .node[data-source=human] .mark")
        page.wait_for_function("document.getElementById('node-title').textContent.includes('human')")
        decision = page.locator("#decision")
        assert NOTE in decision.inner_text() and decision.locator("b").count() == 0  # text, never markup
        assert "dropout\t0.08\t0\t+0.08" in page.locator("#recipe").inner_text()  # value, parent, change
        page.wait_for_function("document.querySelectorAll('#command-list li').length === 3")  # pause, child, resume
        assert page.locator('#command-list').inner_text().count(': applied') == 3
        # 5. screenshots
        page.screenshot(path=str(tmp_path / "3-human-child.png"), full_page=True)
        if os.environ.get("SEARCHMGR_DOCS_FIGURES"):  # refresh the docs' figure
            page.evaluate("document.getElementById('panel').scrollTop = 0")
            page.screenshot(path=str(DOCS_FIGURE))
        page.click("#stop")
        page.wait_for_function("document.getElementById('run-status').textContent === 'stopped'", timeout=60_000)
        assert not problems, problems
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "stopped by command" in text and "Traceback" not in text and "locked" not in text


def test_a_1000_node_tree_renders_in_under_a_second(browser, tmp_path):
    run = synthetic_run(tmp_path / "big", nodes=1000, seed=0)
    service = start_service([run], ServeSettings(port=0), echo=lambda _: None)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})  # under the page's own CSP
        console = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(service.url)
        deadline = time.monotonic() + 30
        while (page.evaluate("window.__treeRender ? window.__treeRender.nodes : 0") < 1000
               and time.monotonic() < deadline):
            time.sleep(0.1)
        ms = page.evaluate("window.__treeRender.ms")
        assert not console, console  # no Content-Security-Policy violation, no failed request
        assert page.locator("#tree .node").count() == 1000
        assert ms < 1000, f"drawing 1,000 nodes took {ms:.0f} ms"
    finally:
        service.stop()
