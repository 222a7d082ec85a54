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
from searchmgr.serve.synthetic import SHOWCASE, showcase_run, synthetic_run

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


@pytest.fixture
def showcase_page(browser, tmp_path):
    """The page over a small hand-made run: every status and source, the fixed recipe's leaf the worst score."""
    service = start_service([showcase_run(tmp_path / "showcase")], ServeSettings(port=0), echo=lambda _: None)
    page = browser.new_page(viewport={"width": 1300, "height": 700}, bypass_csp=True)
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(service.url)
    page.wait_for_function(f"document.querySelectorAll('#tree .node').length === {len(SHOWCASE) + 1}")
    page.wait_for_function("document.getElementById('run-gain').textContent !== ''")
    yield page
    page.close()
    service.stop()
    assert not problems, problems


def _hue(fill: str) -> int:
    return int(re.match(r"hsl\((\d+),", fill).group(1))


def test_colours_rank_nodes_over_the_whole_run(showcase_page):
    scored = {int(g.get_attribute("data-id")): g for g in showcase_page.locator("#tree .node").all()}
    fills = {i: g.locator(".mark").get_attribute("fill") for i, g in scored.items()}
    vals = {i + 1: v for i, (_, _, _, v) in SHOWCASE.items() if v is not None}  # ids: the root is node 1
    hues = {i: _hue(fills[i]) for i in vals}
    worst, best = max(vals, key=vals.get), min(vals, key=vals.get)  # val/loss: lower is better
    fixed_leaf = max(i for i, (_, src, _, _) in SHOWCASE.items() if src == "fixed") + 1
    assert worst == fixed_leaf and hues[fixed_leaf] == 0 and hues[best] == 120  # red, whatever its depth holds
    for a in vals:
        for b in vals:
            if vals[a] < vals[b]:
                assert hues[a] > hues[b], (a, b, hues)
    assert "whole run" in showcase_page.locator("#legend").inner_text()


def test_legend_shapes_and_rings(showcase_page):
    legend = showcase_page.locator("#legend").inner_text()
    for word in ("pruned", "failed", "interrupted", "running", "pending", "human", "root", "best path"):
        assert word in legend
    ring = lambda sel: showcase_page.evaluate(f"getComputedStyle(document.querySelector({sel!r})).stroke")
    pruned, best = ring("#tree .node.pruned .mark"), ring("#tree .edge.best")
    assert pruned != best and pruned != ring("#tree .node.failed .mark")
    human = showcase_page.locator("#tree .node[data-source=human] .mark").first
    assert human.evaluate("e => e.tagName") == "rect"  # squares are people's children, as in the report's tree.png
    assert showcase_page.locator("#tree .node[data-source=heuristic] rect").count() == 0


def test_a_selected_node_keeps_its_status_ring(showcase_page):
    sel = "#tree .node[data-status=pruned] .mark"
    before = showcase_page.evaluate(f"getComputedStyle(document.querySelector({sel!r})).stroke")
    showcase_page.click(sel)
    showcase_page.wait_for_selector("#tree .node.selected.pruned .halo")
    assert showcase_page.evaluate(f"getComputedStyle(document.querySelector({sel!r})).stroke") == before


def test_edges_do_not_cross_labels(showcase_page):
    hits = showcase_page.evaluate("""() => {
      const boxes = [...document.querySelectorAll('#tree .label')].map(t => t.getBBox());
      let hits = [];
      for (const e of document.querySelectorAll('#tree .edge')) {
        const L = e.getTotalLength();
        for (let s = 0; s <= L; s += 1) {
          const p = e.getPointAtLength(s);
          for (const b of boxes) if (p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height) hits.push([p.x, p.y]);
        }
      }
      return hits.length;
    }""")
    assert hits == 0


def test_header_gain_in_the_objectives_direction(showcase_page):
    # the showcase minimises val/loss: best 0.30 against the fixed recipe's 0.62
    assert showcase_page.locator("#run-gain").inner_text() == \
        "best 0.3 vs fixed 0.62: 0.32 lower, better (51.61% of |fixed|)"
    gain = lambda b, f, d: showcase_page.evaluate(
        f"gainText({{best: {{val_score: {b}}}, fixed: {{val_score: {f}}}, direction: '{d}'}})")
    assert gain(-149, -320, "maximize") == "best -149 vs fixed -320: 171 higher, better (53.44% of |fixed|)"
    assert gain(-650, -320, "maximize") == "best -650 vs fixed -320: 330 lower, worse (103.1% of |fixed|)"
    assert gain(0.5, 0, "maximize") == "best 0.5 vs fixed 0: 0.5 higher, better"
    # a fixed recipe whose path stopped before the horizon is compared where it stopped, and the text says where
    stopped = showcase_page.evaluate("gainText({best: {val_score: 0.41}, fixed: {val_score: 0.42, end_step: 20}, "
                                     "max_depth: 3, segment_steps: 20, direction: 'minimize'})")
    assert stopped == "best 0.41 vs fixed 0.42 at step 20 of 60: 0.01 lower, better (2.381% of |fixed|)"
