"""Selection that holds up on a noisy objective (``select.reevaluate=K``, ``select.repeats=R``).

A search ranks its leaves by one validation score each; on a noisy objective (an RL
return over a few episodes, a GRPO accuracy over a few dozen prompts) the top of that
ranking is partly luck: the schedule selected at -149 may score -650 on test. When the
search has finished, :func:`reevaluate` evaluates the checkpoints of the ``K`` best
complete schedules ``R`` times afresh (the task's ``evaluate_checkpoint(checkpoint,
seed)``: fresh episodes or fresh validation problems, the same ``R`` seeds for every
schedule) and records the scores in the store as one ``reevaluated`` event. The best
schedule is then the best of those ``K`` by its mean (:func:`searchmgr.tree.best_leaf`
with :func:`reevaluated`). Nothing else changes: the search trained the same nodes, and
each node keeps its validation score.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable, Sequence

from searchmgr import tree as T
from searchmgr.objective import Family, Objective
from searchmgr.store import EventKind, Node, TreeStore, load_checkpoint
from searchmgr.tasks import Task

NOISY = (Family.RL, Family.GRPO)
DEFAULT_K = 3  # schedules re-evaluated by default on noisy families
SEED_BASE = 7_919  # the fresh evaluations' seeds: SEED_BASE * (run seed + 1) + repeat


def reevaluate_count(select, task: Task) -> int:
    """``select.reevaluate`` resolved for ``task``: the given count (checked), else on for noisy families that
    can re-evaluate."""
    from searchmgr.config import ConfigError

    if select.reevaluate is None:
        return DEFAULT_K if task.family in NOISY and task.evaluates_checkpoints else 0
    if select.reevaluate > 0 and not task.evaluates_checkpoints:
        raise ConfigError(f"select.reevaluate={select.reevaluate} needs a task that can evaluate a checkpoint "
                          f"afresh; task {task.name} does not implement evaluate_checkpoint(checkpoint, seed): "
                          "implement it (docs/tasks.md) or set select.reevaluate=0")
    return select.reevaluate


def seeds(run_seed: int, repeats: int) -> list[int]:
    return [SEED_BASE * (run_seed + 1) + r for r in range(repeats)]


def reevaluate(store: TreeStore, search_id: int, run_dir: Path, task: Task, nodes: Sequence[Node], *, k: int,
               repeats: int, max_depth: int, run_seed: int, say: Callable[[str], None] = lambda _: None) -> dict:
    """Evaluate the ``k`` best complete schedules' checkpoints ``repeats`` times afresh; record and return the
    scores (``{"metric", "seeds", "nodes": {id: {"scores", "mean", "val_score"}}}``)."""
    objective = task.objective
    horizon = max((n.end_step for n in nodes), default=0)
    top = [n for n in T.ranked_leaves(nodes, objective, max_depth)
           if n.depth == max_depth or n.end_step == horizon][:k]
    kept = [n for n in top if n.checkpoint is not None]
    if len(top) < 2:
        return {}  # one complete schedule at most: nothing to choose between
    if len(kept) < 2:
        say(f"select.reevaluate={k}: {len(kept)} of the {len(top)} best complete schedule(s) still have a "
            "checkpoint (a run made without the option kept only the best one); the best is named by validation")
        return {}
    top = kept
    chosen = seeds(run_seed, repeats)
    out: dict[str, dict] = {}
    for n in top:
        checkpoint = load_checkpoint(run_dir / n.checkpoint, n.checkpoint_sha256)
        scores = [float(task.evaluate_checkpoint(checkpoint, s)[objective.metric]) for s in chosen]
        out[str(n.id)] = {"scores": scores, "mean": statistics.fmean(scores), "val_score": n.val_score}
        say(f"re-evaluated node {n.id}: {objective.metric} {n.val_score:.4g} in the search, "
            f"{statistics.fmean(scores):.4g} over {repeats} fresh evaluation(s)")
    data = {"metric": objective.metric, "seeds": chosen, "nodes": out}
    best = T.best_leaf(nodes, objective, max_depth, {int(i): v["mean"] for i, v in out.items()})
    store.add_event(search_id, EventKind.REEVALUATED, f"top {len(top)} schedules re-evaluated {repeats} time(s); "
                    f"best: node {best.id}", node_id=best.id, data=data)
    return data


def recorded(store: TreeStore, search_id: int) -> dict:
    """The last selection's record (see :func:`reevaluate`), or ``{}``."""
    row = store.last_event(search_id, (EventKind.REEVALUATED,))
    return json.loads(row["data"]) if row and row["data"] else {}


def reevaluated(store: TreeStore, search_id: int) -> dict[int, float]:
    """Node id -> mean of its fresh evaluations, from the last selection (``{}`` when none)."""
    return {int(i): v["mean"] for i, v in recorded(store, search_id).get("nodes", {}).items()}


def best_leaf(store: TreeStore, search_id: int, nodes: Sequence[Node], objective: Objective,
              max_depth: int) -> Node | None:
    """The run's best schedule as everyone names it: by validation, re-ranked by a selection that still holds."""
    return T.best_leaf(nodes, objective, max_depth, reevaluated(store, search_id))
