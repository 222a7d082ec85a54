"""A synthetic run store of any size (no training), to measure the page on large trees."""

from __future__ import annotations

import random
from pathlib import Path

from searchmgr.config import build_config
from searchmgr.rundir import DB_NAME
from searchmgr.search import resolve
from searchmgr.store import NodeStatus, TreeStore


def synthetic_run(run_dir: Path, *, nodes: int = 1000, seed: int = 0, max_depth: int = 4) -> Path:
    """Write a toy-task run of ``nodes`` nodes (random branching, every status, two evaluations each)."""
    rng = random.Random(seed)
    config, task = resolve(build_config({"task": "toy", "task_options": {"preset": "smoke"}, "out": str(run_dir),
                                         "max_depth": max_depth, "budget": {"steps": 20 * nodes},
                                         "uct": {"k_max": 16}}))
    run_dir.mkdir(parents=True, exist_ok=False)
    s = config.segment_steps
    with TreeStore(run_dir / DB_NAME) as store, store.atomic():
        sid = store.create_search(task.name, config.model_dump(mode="json"), task.surface.describe(),
                                  task.surface.fingerprint(), {"synthetic": True})
        root = store.add_node(sid, None, 0, 0, 0, task.base_recipe(), "root")
        store.start_node(root.id)
        store.finish_node(root.id, NodeStatus.DONE, val_score=None, test_score=None, utility=None, steps_trained=0,
                          checkpoint="none")
        store.add_event(sid, "created", "synthetic run")
        parents = [root]
        for i in range(nodes - 1):
            parent = rng.choice(parents)
            recipe = {k: v * rng.uniform(0.8, 1.25) if k == "lr" else min(v + rng.uniform(0, 0.05), 0.5)
                      for k, v in parent.recipe.items()}
            n = store.add_node(sid, parent.id, parent.depth + 1, parent.end_step, parent.end_step + s, recipe,
                               "heuristic" if i % 7 else "fixed")
            status = rng.choices([NodeStatus.DONE, NodeStatus.PRUNED, NodeStatus.FAILED], [0.85, 0.12, 0.03])[0]
            if i >= nodes - 3:  # the newest: one running, one pending
                status = NodeStatus.RUNNING if i == nodes - 3 else NodeStatus.PENDING
            if status is NodeStatus.PENDING:
                continue
            store.start_node(n.id)
            val = 0.4 + 0.1 * rng.random() + 0.02 * n.depth * rng.random()
            for k, step in enumerate((n.start_step + s // 2, n.end_step)):
                store.add_metrics(n.id, step, {"train/loss": val * 0.6, "val/loss": val + 0.01 * (1 - k)},
                                  step - n.start_step)
            if status is NodeStatus.RUNNING:
                continue
            ok = status is not NodeStatus.FAILED
            store.finish_node(n.id, status, val_score=val if ok else None, test_score=val + 0.05 if ok else None,
                              utility=-val if ok else None, steps_trained=s, checkpoint="synthetic" if ok else None)
            if status is NodeStatus.DONE and n.depth < max_depth:
                parents.append(store.node(n.id))
        store.add_event(sid, "stopped", "synthetic run written")
    return run_dir


# id: (parent, source, status, val/loss); every status and source once, the fixed recipe's leaf the worst of the run
SHOWCASE = {
    1: (0, "fixed", NodeStatus.DONE, 0.50), 2: (1, "fixed", NodeStatus.DONE, 0.58), 3: (2, "fixed", NodeStatus.DONE, 0.62),
    4: (0, "heuristic", NodeStatus.DONE, 0.40), 5: (0, "heuristic", NodeStatus.PRUNED, 0.55),
    6: (0, "heuristic", NodeStatus.FAILED, None), 7: (4, "model", NodeStatus.DONE, 0.35),
    8: (4, "human", NodeStatus.DONE, 0.38), 9: (4, "heuristic", NodeStatus.INTERRUPTED, None),
    10: (7, "model", NodeStatus.DONE, 0.30), 11: (8, "heuristic", NodeStatus.RUNNING, None),
    12: (7, "heuristic", NodeStatus.PENDING, None), 13: (8, "human", NodeStatus.PRUNED, 0.45),
}


def showcase_run(run_dir: Path) -> Path:
    """A small toy-task run (max_depth 3) with every node status and source, for looking at the page and report."""
    config, task = resolve(build_config({"task": "toy", "task_options": {"preset": "smoke"}, "out": str(run_dir),
                                         "max_depth": 3}))
    run_dir.mkdir(parents=True, exist_ok=False)
    s = config.segment_steps
    with TreeStore(run_dir / DB_NAME) as store, store.atomic():
        sid = store.create_search(task.name, config.model_dump(mode="json"), task.surface.describe(),
                                  task.surface.fingerprint(), {"synthetic": True})
        made = {0: store.add_node(sid, None, 0, 0, 0, task.base_recipe(), "root")}
        store.start_node(made[0].id)
        store.finish_node(made[0].id, NodeStatus.DONE, val_score=None, test_score=None, utility=None,
                          steps_trained=0, checkpoint="none")
        for key, (parent_key, source, status, val) in SHOWCASE.items():
            p = made[parent_key]
            recipe = dict(p.recipe) if source == "fixed" else {**p.recipe, "lr": p.recipe["lr"] * (1 + key / 20)}
            n = made[key] = store.add_node(sid, p.id, p.depth + 1, p.end_step, p.end_step + s, recipe, source)
            if status is NodeStatus.PENDING:
                continue
            store.start_node(n.id)
            if val is not None:
                store.add_metrics(n.id, n.end_step, {"train/loss": val * 0.8, "val/loss": val, "test/loss": val + 0.02},
                                  s)
            if status is NodeStatus.RUNNING:
                continue
            if status is NodeStatus.INTERRUPTED:
                store.interrupt_running(sid, [n.id])
                continue
            store.finish_node(n.id, status, val_score=val, test_score=None if val is None else val + 0.02,
                              utility=None if val is None else -val, steps_trained=s,
                              checkpoint="synthetic" if status is NodeStatus.DONE else None)
        store.add_event(sid, "stopped", "showcase run written")
    return run_dir
