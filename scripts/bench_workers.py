"""Benchmark: node throughput against workers, for the process and Ray executors.

The toy task sleeps ``--delay`` seconds per step (``step_delay_s``) on a tiny MLP, so a
segment's time is the sleep, not this machine's cores: the figure is the engine's (how
well the coordinator keeps N workers busy), not the CPU's. The random manager always
finds a distinct child and the stopper is off, so every segment has the same length.
For each executor and N it runs one search of ``--segments`` segments and reports
nodes per second and the efficiency against N times the same executor's one-worker rate.

    .venv/bin/python scripts/bench_workers.py                     # N = 1, 2, 4; process and ray
    .venv/bin/python scripts/bench_workers.py --executors process --workers 1 2

Writes docs/figures/workers.png and runs/bench_workers/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(executor: str, workers: int, args: argparse.Namespace) -> dict:
    from searchmgr.search import explore

    out = args.out / f"{executor}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    words = ["task=toy", "width=16", f"step_delay_s={args.delay}", f"segment_steps={args.segment_steps}",
             f"eval_every={args.segment_steps}", "max_depth=3", "uct.k_max=16", "manager.name=random",
             "stopper.name=none", f"budget.steps={args.segment_steps * args.segments}", "threads=1",
             f"executor.name={executor}", f"out={out}"]
    if executor != "inline":
        words.append(f"executor.workers={workers}")
    outcome = explore(words)
    if executor == "ray":
        import ray

        ray.shutdown()
    rate = outcome.nodes_trained / outcome.wall_s
    return {"executor": executor, "workers": workers, "nodes": outcome.nodes_trained, "wall_s": outcome.wall_s,
            "nodes_per_s": rate, "utilisation": 1 - outcome.overhead_share}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--executors", nargs="+", default=["process", "ray"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--delay", type=float, default=0.02, help="seconds slept per training step")
    p.add_argument("--segment-steps", type=int, default=25)
    p.add_argument("--segments", type=int, default=48, help="segments the step budget pays for")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_workers")
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    rows = []
    for executor in args.executors:
        for n in args.workers:
            r = run_once(executor, n, args)
            base = next(x for x in rows if x["executor"] == executor and x["workers"] == args.workers[0]) \
                if rows and rows[-1]["executor"] == executor else r
            r["efficiency"] = r["nodes_per_s"] / (base["nodes_per_s"] * n / base["workers"])
            rows.append(r)
            print(f"{executor:>8} N={n}: {r['nodes']} nodes in {r['wall_s']:.1f}s = {r['nodes_per_s']:.2f} nodes/s, "
                  f"efficiency {r['efficiency']:.2f} x N, workers busy {100 * r['utilisation']:.0f}%", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=80)
    ns = sorted(set(args.workers))
    for executor in args.executors:
        mine = [r for r in rows if r["executor"] == executor]
        ax.plot([r["workers"] for r in mine], [r["nodes_per_s"] for r in mine], "o-", label=executor)
        one = mine[0]["nodes_per_s"] / mine[0]["workers"]
    ax.plot(ns, [one * n for n in ns], "k:", label="N x one worker (last executor)")
    ax.plot(ns, [0.8 * one * n for n in ns], color="grey", ls="--", lw=0.8, label="0.8 N")
    ax.set_xlabel("workers N")
    ax.set_ylabel("nodes trained per second")
    ax.set_xticks(ns)
    ax.set_title(f"throughput, {args.segment_steps} steps x {args.delay:g}s sleep per segment", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    figure = ROOT / "docs" / "figures" / "workers.png"
    fig.savefig(figure)
    print(f"wrote {figure} and {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
