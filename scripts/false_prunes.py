"""Benchmark: how often the early stopper pruned a segment that would have won.

For a sample of pruned nodes of the given runs, retrain each segment to its end from
its parent's checkpoint (the same recipe, no stopper) and compare its final validation
score with what the stopper judged it against (``best_at_depth`` in the stop decision).
A *false prune* is a segment whose full run would have beaten that reference.

With ``--horizon`` the retrained segment is carried on to the end of the schedule the way the tree's first
choice would (``uct.hold_first``: hold its recipe, segment after segment), and its final score is compared with
the run's best complete schedule: a false prune *at the horizon* is a pruned segment whose schedule would have
ended better than what the search returned.

    .venv/bin/python scripts/false_prunes.py runs/cmp/toy/tree/seed0 runs/cmp/toy/tree/seed1 --sample 10
    .venv/bin/python scripts/false_prunes.py runs/cmp/toy/tree/seed0 --sample 5 --horizon
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from searchmgr.store import DecisionKind, NodeStatus, TreeStore, load_checkpoint
from searchmgr.tasks import Segment, make_task
from searchmgr.tree import best_leaf


def check_run(run: Path, sample: int, rng: random.Random, horizon: bool = False) -> list[dict]:
    with TreeStore(run / "tree.db") as store:
        row = store.search()
        cfg, nodes = row["config"], store.nodes(row["id"])
        stops = {d.node_id: d for d in store.decisions(row["id"], kind=DecisionKind.STOPPER) if d.applied}
    task = make_task(row["task"], cfg["task_options"])
    objective = task.objective
    index = {n.id: n for n in nodes}
    pruned = [n for n in nodes if n.status is NodeStatus.PRUNED and n.id in stops
              and index[n.parent_id].checkpoint]
    out = []
    for n in rng.sample(pruned, min(sample, len(pruned))):
        parent = index[n.parent_id]
        reference = stops[n.id].context.get("best_at_depth")
        state = load_checkpoint(run / parent.checkpoint, parent.checkpoint_sha256)
        segment = Segment(n.start_step, n.end_step - n.start_step, cfg["segment_steps"] * cfg["max_depth"],
                          cfg["eval_every"])
        result = task.train_segment(state, n.recipe, segment, lambda step, metrics: False)
        final = result.metrics[objective.metric]
        if horizon:  # hold the recipe to the end of the schedule; judge against the search's best schedule
            end, length = n.end_step, cfg["segment_steps"]
            while end < segment.horizon:
                result = task.train_segment(result.checkpoint, n.recipe,
                                            Segment(end, length, segment.horizon, cfg["eval_every"]),
                                            lambda step, metrics: False)
                end += length
            final = result.metrics[objective.metric]
            reference = best_leaf(nodes, objective, cfg["max_depth"]).val_score
        false = reference is not None and objective.direction.better(final, reference)
        out.append({"run": str(run), "node": n.id, "depth": n.depth, "pruned_at": n.val_score, "final": final,
                    "reference": reference, "false_prune": false})
        print(f"{run} node {n.id} (depth {n.depth}): pruned at {n.val_score:.4g}, "
              f"{'held to the horizon' if horizon else 'full segment'} {final:.4g}, "
              f"{'best schedule' if horizon else 'reference'} {reference:.4g} -> {'FALSE PRUNE' if false else 'right'}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--sample", type=int, default=10, help="pruned nodes retrained per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon", action="store_true", help="carry each retrained segment to the horizon (holding its "
                   "recipe) and judge it against the run's best complete schedule")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    rows = [r for run in args.runs for r in check_run(run, args.sample, rng, args.horizon)]
    false = sum(r["false_prune"] for r in rows)
    print(f"false prunes: {false}/{len(rows)} = {false / max(len(rows), 1):.0%} of the retrained pruned segments")


if __name__ == "__main__":
    main()
