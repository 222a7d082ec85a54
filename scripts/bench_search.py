"""Benchmark the search machinery: overhead share and search-vs-fixed at the same step budget.

    .venv/bin/python scripts/bench_search.py toy
    .venv/bin/python scripts/bench_search.py tinystories_overfit budget.steps=6000
    .venv/bin/python scripts/bench_search.py --runs runs/cmp/tinystories_overfit/tree/seed0   # an existing run

For each task it runs one `heuristic` search (task defaults unless overridden) and prints:
wall time of the whole explore() call and of its search loop (without start-up: imports,
data, tokenizer and the root model), seconds inside training segments (the task's own steps
and evaluations), the share of wall time outside training for both (search, UCT, store,
checkpoints), and the best validation score of the search against
its fixed recipe (the base recipe held over the same horizon, trained inside the same run),
then every validation metric of the two schedules' last evaluation side by side (for
tinystories_aux: the LM loss the search optimises and the dialogue loss and accuracy
reported beside it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from searchmgr import tree as T
from searchmgr.progress import ConsoleReporter
from searchmgr.rundir import open_run
from searchmgr.search import explore
from searchmgr.store import NodeStatus


def bench(task: str, words: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{task}-")) / "run"
    t0 = time.perf_counter()
    outcome = explore([f"task={task}", f"out={out}", *words], reporter=ConsoleReporter())
    wall = time.perf_counter() - t0
    with open_run(out) as store:
        nodes = store.nodes(store.search()["id"])
        last_val = {which: {k: v for k, v in store.metrics(leaf.id)[-1][1].items() if k.startswith("val/")}
                    for which, leaf in (("best", outcome.best), ("fixed", outcome.fixed))}
    train_s = sum(n.train_s or 0.0 for n in nodes)
    return {
        "task": task, "wall_s": wall, "train_s": train_s, "outside_share": 1 - train_s / wall,
        "loop_s": outcome.wall_s, "loop_share": 1 - train_s / outcome.wall_s,
        "steps": T.steps_used(nodes), "nodes": sum(n.depth > 0 for n in nodes),
        "pruned": sum(n.status is NodeStatus.PRUNED for n in nodes),
        "best": outcome.best.val_score, "best_test": outcome.best.test_score,
        "fixed": outcome.fixed.val_score, "fixed_test": outcome.fixed.test_score, "run": out,
        "last_val": last_val,
    }


def overhead(run: Path) -> None:
    """For a finished run: the share of the time from its first segment's start to its last segment's end that
    was spent outside training (planning, proposals, store writes, checkpoint retention)."""
    with open_run(run) as store:
        nodes = [n for n in store.nodes(store.search()["id"]) if n.depth > 0 and n.started_at and n.finished_at]
    span = max(n.finished_at for n in nodes) - min(n.started_at for n in nodes)
    train_s = sum(n.train_s or 0.0 for n in nodes)
    print(f"{run}: {len(nodes)} segments, {span:.1f} s from the first start to the last end, {train_s:.1f} s "
          f"training, {100 * (1 - train_s / span):.2f}% outside training")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--runs"]:  # measure existing runs instead of running a search
        for run in argv[1:]:
            overhead(Path(run))
        return
    tasks = [a for a in argv if "=" not in a] or ["toy"]
    words = [a for a in argv if "=" in a]
    rows = [bench(t, words) for t in tasks]
    print(f"\n{'task':<22}{'wall s':>9}{'loop s':>9}{'train s':>9}{'outside':>9}{'in loop':>9}{'steps':>8}{'nodes':>7}{'pruned':>8}"
          f"{'best val':>10}{'fixed val':>11}{'best test':>11}{'fixed test':>11}")
    for r in rows:
        print(f"{r['task']:<22}{r['wall_s']:>9.1f}{r['loop_s']:>9.1f}{r['train_s']:>9.1f}{100 * r['outside_share']:>8.2f}%"
              f"{100 * r['loop_share']:>8.2f}%"
              f"{r['steps']:>8}{r['nodes']:>7}{r['pruned']:>8}{r['best']:>10.4f}{r['fixed']:>11.4f}"
              f"{r['best_test']:>11.4f}{r['fixed_test']:>11.4f}")
    for r in rows:
        print(f"\n{r['task']}: last evaluation of each schedule")
        print(f"  {'metric':<28}{'best':>12}{'fixed':>12}")
        for key in sorted(r["last_val"]["best"]):
            print(f"  {key:<28}{r['last_val']['best'][key]:>12.4f}{r['last_val']['fixed'].get(key, float('nan')):>12.4f}")
        print(f"{r['task']}: run kept at {r['run']}")


if __name__ == "__main__":
    main(sys.argv[1:])
