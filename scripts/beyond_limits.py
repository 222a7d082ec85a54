"""How many transitions of each method's best schedule go beyond the step limits the tree's verifier enforces.

    .venv/bin/python scripts/beyond_limits.py runs/F_toy_1200 runs/F_toy_2400

The tree's children are verified against each knob's step limit (``searchmgr tasks`` lists them); population
methods (pbt, pb2) copy a member's checkpoint and draw a new recipe anywhere within the knobs' ranges. For each
compare folder and method this prints how many consecutive segments along the best schedule change a knob by
more than its limit, and in how many seeds' best schedules that happens at least once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from searchmgr.analysis import load_run
from searchmgr.surface import Knob, Scale
from searchmgr.tasks import load_task

SLACK = 1.0001  # float round-off of a move made exactly at the limit


def beyond(knob: Knob, a: float, b: float) -> bool:
    if knob.scale is Scale.LOG:
        ratio = b / a if a > 0 else float("inf")
        return not 1 / ((1 + knob.max_step) * SLACK) <= ratio <= (1 + knob.max_step) * SLACK
    return abs(b - a) > knob.max_step * (knob.high - knob.low) * SLACK


def main(folders: list[str]) -> None:
    for folder in folders:
        d = json.loads((Path(folder) / "compare.json").read_text())
        surface = load_task(d["task"], {}).surface
        for method, entry in d["methods"].items():
            moves = over = paths = paths_over = 0
            for s in entry["seeds"]:
                path = load_run(s["run"]).best_path()[1:]
                flags = [any(beyond(k, a.recipe[k.name], b.recipe[k.name]) for k in surface.knobs)
                         for a, b in zip(path, path[1:])]
                moves, over = moves + len(flags), over + sum(flags)
                paths, paths_over = paths + 1, paths_over + any(flags)
            print(f"{Path(folder).name:16s} {method:15s} transitions beyond the step limits: {over}/{moves}; "
                  f"best schedules with one: {paths_over}/{paths}")


if __name__ == "__main__":
    main(sys.argv[1:])
