"""The page shows a run's state as its store and owner lock say, in a real headless Chromium: live, paused,
killed (interrupted within 2 s, nothing to click), finished, and a supervised run."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_lifecycle import training, wait_for

from searchmgr.serve import ServeSettings, start_service
from searchmgr.supervise import supervise

playwright = pytest.importorskip("playwright.sync_api", reason="needs the serve extra (playwright)")
CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("SEARCHMGR_SCREENSHOTS")  # a folder to keep the screenshots in, to look at them


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def page_for(browser, run: Path):
    service = start_service([run], ServeSettings(port=0), echo=lambda text: None)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page.goto(service.url)
    return service, page


def status_is(page, status: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(f"document.getElementById('run-status').textContent === '{status}'", timeout=timeout_ms)


def buttons(page) -> dict[str, bool]:
    return {b: page.is_enabled(f"#{b}") for b in ("pause", "resume", "stop")}


def shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(Path(SHOTS or tmp_path) / f"{name}.png"), full_page=True)


def test_live_paused_killed_finished_and_supervised(browser, tmp_path):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
    run = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "searchmgr", "explore", "task=toy", "preset=smoke", "threads=1",
                             "step_delay_s=0.05", "budget.steps=4000", f"out={run}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: training(run))
        service, page = page_for(browser, run)
        status_is(page, "running")
        assert buttons(page) == {"pause": True, "resume": False, "stop": True}
        shot(page, tmp_path, "1-live")
        page.click("#pause")
        status_is(page, "paused")
        assert buttons(page) == {"pause": False, "resume": True, "stop": True}
        shot(page, tmp_path, "2-paused")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        status_is(page, "interrupted", timeout_ms=2_000)  # within 2 s of the kill
        assert buttons(page) == {"pause": False, "resume": False, "stop": False}
        assert f"explore --resume {run}" in page.get_attribute("#run-status", "title")
        assert page.locator("#tree .node[data-status=running]").count() == 0
        shot(page, tmp_path, "3-killed")
        service.stop()
    finally:
        proc.kill()

    finished = tmp_path / "finished"
    subprocess.run([sys.executable, "-m", "searchmgr", "explore", "task=toy", "preset=smoke", "threads=1",
                    "budget.steps=60", f"out={finished}"], check=True, capture_output=True)
    service, page = page_for(browser, finished)
    status_is(page, "finished")
    assert buttons(page) == {"pause": False, "resume": False, "stop": False}
    shot(page, tmp_path, "4-finished")
    service.stop()

    supervised = tmp_path / "supervised"
    supervise(["task=toy", "preset=smoke", "interval=0", f"out={supervised}"])
    service, page = page_for(browser, supervised)
    status_is(page, "finished")
    assert buttons(page) == {"pause": False, "resume": False, "stop": False}
    assert "explore --resume" not in (page.get_attribute("#run-status", "title") or "")
    shot(page, tmp_path, "5-supervised")
    service.stop()
