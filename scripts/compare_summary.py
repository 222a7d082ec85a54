"""One table over several ``searchmgr compare`` folders: the tree against the best baseline per task.

    .venv/bin/python scripts/compare_summary.py runs/cmp/toy runs/cmp/grpo_arith runs/cmp/tinystories_overfit

For each folder's ``compare.json`` prints a markdown row: the task, its objective, the budget, the
tree's best validation (mean ± se over seeds) and its test score, the best baseline by mean
validation, and the verdict: ``win`` when the tree's mean is better, ``loss`` when it is worse by
more than one standard error (of the two methods' means, combined), else ``tie (behind)``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from searchmgr.compare import BASELINES


def fmt(stat: dict) -> str:
    return f"{stat['mean']:.4g} ± {stat['se']:.2g}"


def row(folder: Path, tree: str) -> str:
    d = json.loads((folder / "compare.json").read_text())
    sign = 1 if d["objective"]["direction"] == "maximize" else -1
    methods = d["methods"]
    if tree not in methods:
        raise SystemExit(f"{folder}: no {tree!r} runs; methods are {sorted(methods)}")
    base = [m for m in BASELINES if m in methods]
    best = max(base, key=lambda m: sign * methods[m]["best_val"]["mean"])
    t, b = methods[tree]["best_val"], methods[best]["best_val"]
    gap = sign * (t["mean"] - b["mean"])
    se = math.hypot(t["se"], b["se"])
    verdict = "win" if gap > 0 else ("loss" if -gap > se else "tie (behind)")
    arrow = "higher" if sign > 0 else "lower"
    return (f"| {d['task']} | {d['objective']['metric']} ({arrow} is better) | {d['budget_steps']} | "
            f"{fmt(t)} | {fmt(methods[tree]['test'])} | {best} {fmt(b)} | {fmt(methods[best]['test'])} | "
            f"{verdict} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+", help="compare output folders (each with compare.json)")
    p.add_argument("--tree", default="tree", help="the method to judge (default: tree)")
    a = p.parse_args()
    print("| task | objective | budget | tree best val | its test | best baseline (val) | its test | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in a.folders:
        print(row(folder, a.tree))


if __name__ == "__main__":
    main()
