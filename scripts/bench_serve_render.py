"""How fast the page draws a large tree: a synthetic run of N nodes, served, opened in headless Chromium.

Prints, per page load: the JS drawing time of the tree (``window.__treeRender.ms``), the time from
navigation to the tree drawn, and the size and time of the API's full and incremental tree answers.

    .venv/bin/python scripts/bench_serve_render.py --nodes 1000 --loads 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch
from playwright.sync_api import sync_playwright

from searchmgr.serve import ServeSettings, start_service
from searchmgr.serve.synthetic import synthetic_run

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--loads", type=int, default=5, help="page loads measured")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = synthetic_run(Path(tmp) / "big", nodes=args.nodes)
        print(f"synthetic run of {args.nodes} nodes written in {time.perf_counter() - t0:.1f}s")
        service = start_service([run], ServeSettings(port=0), echo=lambda _: None)
        try:
            with httpx.Client(base_url=service.url) as c:
                t0 = time.perf_counter()
                full = c.get("/api/runs/big/tree")
                full_s = time.perf_counter() - t0
                rev = full.json()["revision"]
                t0 = time.perf_counter()
                inc = c.get(f"/api/runs/big/tree?after={rev}")
                inc_s = time.perf_counter() - t0
            print(f"API tree: full {len(full.content) / 1024:.0f} KiB in {1000 * full_s:.0f} ms; "
                  f"incremental (nothing changed) {len(inc.content)} B in {1000 * inc_s:.0f} ms")
            draw, total = [], []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for _ in range(args.loads):
                    t0 = time.perf_counter()
                    page.goto(service.url)
                    while page.evaluate("window.__treeRender ? window.__treeRender.nodes : 0") < args.nodes:
                        time.sleep(0.005)
                    total.append(1000 * (time.perf_counter() - t0))
                    draw.append(page.evaluate("window.__treeRender.ms"))
                browser.close()
        finally:
            service.stop()
    print(f"tree drawing (JS): median {statistics.median(draw):.0f} ms, max {max(draw):.0f} ms over {args.loads} loads")
    print(f"navigation to tree drawn: median {statistics.median(total):.0f} ms, max {max(total):.0f} ms")


if __name__ == "__main__":
    main()
