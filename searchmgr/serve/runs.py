"""What the service shows of a run, read from its store opened read-only.

Every function opens the store with :meth:`TreeStore.read_only` for one consistent
snapshot (one read transaction) and closes it: the service never holds a lock the
search could wait on, and never writes anything but commands (:mod:`.app`).
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from searchmgr import selection
from searchmgr import tree as T
from searchmgr.commands import HUMAN
from searchmgr.lifecycle import RunStatus, RunView, read_run
from searchmgr.rundir import DB_NAME
from searchmgr.store import (
    CommandKind, DecisionKind, DecisionRecord, Node, NodeNotFound, NodeStatus, StoreError, TreeStore, DecisionVerdict,
)
from searchmgr.tasks import TaskError, stored_objective
from searchmgr.tasks.base import Objective
from searchmgr.traces import evidence_text

@dataclass(frozen=True)
class Run:
    id: str  # what /api/runs gives and the other routes take
    path: Path  # the run directory

    @property
    def db(self) -> Path:
        return self.path / DB_NAME


def name_runs(paths: Sequence[Path]) -> dict[str, Run]:
    """Ids from the directory names (``runs/toy3`` -> ``toy3``; a repeated name gets ``-2``, ``-3`` ...)."""
    out: dict[str, Run] = {}
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(p).resolve().name).strip("-.") or "run"
        rid, k = base, 2
        while rid in out:
            rid, k = f"{base}-{k}", k + 1
        out[rid] = Run(rid, Path(p))
    return out


@contextlib.contextmanager
def snapshot(run: Run) -> Iterator[TreeStore]:
    """The run's store, read-only, inside one read transaction."""
    store = TreeStore.read_only(run.db)
    try:
        store.db.conn.execute("BEGIN")
        yield store
    finally:
        store.db.conn.rollback()
        store.close()


def finite(x: Any) -> Any:
    """JSON-safe: NaN and infinities (a diverged metric) become None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def view_of(run: Run, store: TreeStore, search_id: int) -> RunView:
    """The run's state as stored, checked against its owner lock (:mod:`searchmgr.lifecycle`)."""
    return read_run(store, search_id, run.path)


def is_baseline(row: dict) -> bool:
    """Whether the run's policy is a baseline (its nodes' role is ``baseline``), not the tree search."""
    return (row["config"].get("policy") or {}).get("name", "uct") != "uct"


def node_json(n: Node, view: RunView | None = None, baseline: bool = False) -> dict:
    status = view.node_status(n) if view is not None else n.status
    return {"id": n.id, "parent_id": n.parent_id, "depth": n.depth, "status": status.value, "source": n.source,
            "role": T.role_of(n, baseline=baseline).value,
            "recipe": n.recipe, "val_score": n.val_score, "test_score": n.test_score, "utility": n.utility,
            "start_step": n.start_step, "end_step": n.end_step, "steps_trained": n.steps_trained,
            "visits": n.visits, "error": n.error, "rev": n.rev}


def _objective(row: dict) -> Objective:
    try:
        return stored_objective(row)
    except TaskError as e:
        raise StoreError(f"the run's task cannot be loaded here: {e}") from None


def _summary(run: Run, store: TreeStore, row: dict, nodes: list[Node]) -> dict:
    cfg = row["config"]
    objective = _objective(row)
    best = selection.best_leaf(store, row["id"], nodes, objective, cfg["max_depth"])
    fixed = T.fixed_path(nodes)[-1] if nodes else None
    view = view_of(run, store, row["id"])
    return {
        "id": run.id, "path": str(run.path), "task": row["task"], "status": view.status.value,
        "state_reason": view.reason, "hint": view.hint, "supervised": view.supervised,
        "accepts": [k.value for k in view.accepts], "metric": objective.metric,
        "direction": objective.direction.value,
        "best": {"node": best.id, "val_score": best.val_score, "test_score": best.test_score} if best else None,
        "fixed": {"node": fixed.id, "val_score": fixed.val_score, "test_score": fixed.test_score,
                  "end_step": fixed.end_step}
        if fixed is not None and fixed.depth else None,
        "steps_used": T.steps_used(nodes), "budget_steps": cfg["budget"]["steps"], "nodes": len(nodes),
        "max_depth": cfg["max_depth"], "segment_steps": cfg["segment_steps"], "k_max": cfg["uct"]["k_max"],
        "manager": cfg["manager"]["name"], "stopper": cfg["stopper"]["name"], "revision": store.revision(),
    }


def summary(run: Run) -> dict:
    with snapshot(run) as store:
        row = store.search()
        return finite(_summary(run, store, row, store.nodes(row["id"])))


def tree(run: Run, after: int | None = None) -> dict:
    """The tree, or with ``after`` only the nodes changed after that revision, plus the best and fixed paths."""
    with snapshot(run) as store:
        row = store.search()
        nodes = store.nodes(row["id"])
        s = _summary(run, store, row, nodes)
        best = T.path_to(nodes, s["best"]["node"]) if s["best"] else []
        changed = nodes if after is None else [n for n in nodes if n.rev > after]
        view = view_of(run, store, row["id"])
        if view.owner is None and after is not None:  # nodes its dead owner left running now read as interrupted
            changed += [n for n in nodes if n.status is NodeStatus.RUNNING and n.rev <= after]
        out = {"run": run.id, "revision": s["revision"], "full": after is None, "summary": s,
               "nodes": [node_json(n, view, is_baseline(row)) for n in changed], "best_path": [n.id for n in best],
               "fixed_path": [n.id for n in T.fixed_path(nodes)] if nodes else []}
        if after is None:
            out["surface"] = row["surface"]
        return finite(out)


def _decision_json(d: DecisionRecord) -> dict:
    parsed = d.parsed if isinstance(d.parsed, dict) else {}
    context = d.context if isinstance(d.context, dict) else {}
    return {"id": d.id, "source": d.source, "verdict": d.verdict.value, "reason": d.reason, "applied": d.applied,
            "attempt": d.attempt, "latency_s": d.latency_s, "created_at": d.created_at,
            "diagnosis": parsed.get("diagnosis"), "updates": parsed.get("updates"),
            "expected_outcome": parsed.get("expected_outcome"), "watch_items": parsed.get("watch_items"),
            "control_audit": parsed.get("control_audit"),
            "note": context.get("note") if d.source == HUMAN else None,
            "evidence": evidence_text(context["evidence"]) if isinstance(context.get("evidence"), dict) else None}


def node_detail(run: Run, node_id: int) -> dict:
    """A node's panel: recipe and change from the parent, curves along its path, the decision that made it,
    what was observed, the attempts made from it and the stopper's verdicts on it."""
    with snapshot(run) as store:
        row = store.search()
        nodes = store.nodes(row["id"])
        index = T.by_id(nodes)
        if node_id not in index:
            raise NodeNotFound(f"run {run.id} has no node {node_id}; node ids are 1..{max(index, default=0)}")
        n = index[node_id]
        parent = index.get(n.parent_id)
        objective = _objective(row)
        view = view_of(run, store, row["id"])
        curves: dict[str, list] = {}
        for p in T.path_to(nodes, node_id)[1:]:
            for step, metrics in store.metrics(p.id):
                for k, v in metrics.items():
                    curves.setdefault(k, []).append([step, v])
        decision = store.decision(n.decision_id) if n.decision_id else None
        own = store.metrics(node_id)
        observed = {"val_score": n.val_score, "test_score": n.test_score,
                    "parent_val_score": parent.val_score if parent else None,
                    "last_metrics": own[-1][1] if own else {}, "steps_trained": n.steps_trained}
        if n.val_score is not None and parent is not None and parent.val_score is not None:
            observed["change"] = n.val_score - parent.val_score
            observed["improved"] = objective.utility(n.val_score) > objective.utility(parent.val_score)
        manager = store.decisions(row["id"], node_id=node_id, kind=DecisionKind.MANAGER)
        stopper = store.decisions(row["id"], node_id=node_id, kind=DecisionKind.STOPPER)
        kids = T.children(nodes, node_id)
        return finite({
            "run": run.id, "revision": store.revision(), "node": node_json(n, view, is_baseline(row)),
            "parent_recipe": parent.recipe if parent else None,
            "change": {k: {"from": parent.recipe.get(k), "to": v} for k, v in n.recipe.items()
                       if parent and parent.recipe.get(k) != v},
            "curves": curves, "metric": objective.metric, "direction": objective.direction.value,
            "decision": _decision_json(decision) if decision else None, "observed": observed,
            "attempts": [_decision_json(d) for d in manager if d.verdict is not DecisionVerdict.ACCEPTED],
            "stopper": [{**_decision_json(d), "step": d.context.get("step") if isinstance(d.context, dict) else None}
                        for d in stopper],
            "children": [c.id for c in kids],
            "can_branch": can_branch(n, view, row["config"]["max_depth"]),
        })


def can_branch(n: Node, view: RunView, max_depth: int) -> bool:
    """Whether the page offers a person's child of ``n``: a supervised run changes the recipe of its live segment
    in training; a search branches from a trained segment above the horizon (applied now, or at its resume)."""
    if CommandKind.CHILD not in view.accepts:
        return False
    if view.supervised:
        return n.status is NodeStatus.RUNNING
    return n.status is NodeStatus.DONE and n.checkpoint is not None and n.depth < max_depth


def commands(run: Run) -> dict:
    with snapshot(run) as store:
        sid = store.search()["id"]
        return finite({"run": run.id, "revision": store.revision(), "commands": [
            {"id": c.id, "kind": c.kind.value, "node_id": c.node_id, "status": c.status.value, "result": c.result,
             "child_id": c.child_id, "created_at": c.created_at, "applied_at": c.applied_at,
             "recipe": c.payload.get("recipe") if isinstance(c.payload, dict) else None}
            for c in store.commands(sid)]})
