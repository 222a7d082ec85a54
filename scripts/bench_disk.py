"""Benchmark: bytes of checkpoints on disk against nodes trained, ``checkpoints.keep=all`` vs the default.

Runs the same search twice (same seed, so the same tree) and records the size of the
run's ``checkpoints/`` folder after every finished node. Prints the final sizes and
writes docs/figures/disk.png.

    .venv/bin/python scripts/bench_disk.py                              # toy, default budget
    .venv/bin/python scripts/bench_disk.py task=tinystories_overfit preset=smoke budget.steps=96
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from searchmgr.progress import Reporter
    from searchmgr.search import explore

    words = sys.argv[1:] or ["task=toy", "threads=1"]
    rows = {}
    for keep in ("all", "expandable"):
        out = ROOT / "runs" / "bench_disk" / keep
        shutil.rmtree(out, ignore_errors=True)
        seen: list[tuple[int, int]] = []

        class Sizes(Reporter):
            def node_finished(self, node, best, budget_used, nodes_done):
                size = sum(p.stat().st_size for p in (out / "checkpoints").glob("*.pt"))
                seen.append((nodes_done, size))

        explore(words + [f"checkpoints.keep={keep}", f"out={out}"], reporter=Sizes())
        rows[keep] = seen
        print(f"keep={keep}: {seen[-1][0]} nodes trained, {seen[-1][1] / 2**20:.2f} MiB of checkpoints at the end, "
              f"peak {max(b for _, b in seen) / 2**20:.2f} MiB", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=80)
    for keep, seen in rows.items():
        ax.plot([n for n, _ in seen], [b / 2**20 for _, b in seen], label=f"checkpoints.keep={keep}")
    ax.set_xlabel("nodes trained")
    ax.set_ylabel("checkpoints on disk (MiB)")
    ax.set_title(" ".join(words), fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "figures" / "disk.png")
    print("wrote docs/figures/disk.png")


if __name__ == "__main__":
    main()
