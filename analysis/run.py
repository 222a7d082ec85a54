"""A finished (or stopped) run read once from its store into a frozen snapshot for analysis.

Everything in :mod:`searchmgr.analysis` works on :class:`RunData`, so reports and
aggregations never hold a database open and never change a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchmgr import selection
from searchmgr import tree as T
from searchmgr.lifecycle import read_run
from searchmgr.rundir import open_run, stored_config
from searchmgr.store import DecisionKind, Node
from searchmgr.surface import Role, Scale
from searchmgr.tasks import Direction, Family, Objective


@dataclass(frozen=True)
class KnobInfo:
    """What analysis needs of a knob, read from the surface stored with the run."""

    name: str
    low: float
    high: float
    scale: Scale
    role: Role
    effect: str = ""

    @classmethod
    def from_description(cls, d: dict) -> "KnobInfo":
        low, high = d["range"]
        return cls(d["name"], float(low), float(high), Scale(d["scale"]), Role(d["role"]), d.get("effect", ""))

    def transform(self, value: float) -> float:
        """The value on the knob's own scale (natural log for log-scale knobs)."""
        return math.log(value) if self.scale is Scale.LOG else float(value)

    @property
    def span(self) -> float:
        """Width of the knob's range on its own scale."""
        return self.transform(self.high) - self.transform(self.low)


@dataclass(frozen=True)
class DecisionCounts:
    accepted: int
    rejected: int
    errors: int
    stopper_stops: int


@dataclass(frozen=True)
class RunData:
    """A snapshot of one run: config, surface, nodes, their metrics and decisions."""

    run_dir: Path
    task: str
    config: dict[str, Any]
    info: dict[str, Any]
    objective: Objective
    knobs: tuple[KnobInfo, ...]
    nodes: tuple[Node, ...]
    metrics: dict[int, list[tuple[int, dict[str, float]]]]  # node id -> [(step, {key: value})]
    decisions: dict[int, dict | None]  # node id -> parsed decision that created it
    counts: DecisionCounts
    state: str = ""  # the run's state as readers show it, with how to continue (searchmgr.lifecycle)
    selection: dict = field(default_factory=dict)  # the last select.reevaluate record (searchmgr.selection)

    @property
    def reevaluated(self) -> dict[int, float]:
        """Node id -> mean of its fresh evaluations (``select.reevaluate``); empty when none were made."""
        return {int(i): v["mean"] for i, v in self.selection.get("nodes", {}).items()}

    @property
    def max_depth(self) -> int:
        return int(self.config["max_depth"])

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def name(self) -> str:
        """The run's folder name: what titles call the run (a plug-in's task is a long file path)."""
        return self.run_dir.resolve().name

    @property
    def label(self) -> str:
        return f"{self.name} seed={self.seed}"

    @property
    def family(self) -> Family:
        """The task's family, as recorded with the run (older runs: the task class's, else supervised)."""
        from searchmgr.tasks import TaskError, task_class

        if "family" in self.info:
            return Family(self.info["family"])
        try:
            return task_class(self.task).family
        except TaskError:
            return Family.SUPERVISED

    def knob(self, name: str) -> KnobInfo:
        return next(k for k in self.knobs if k.name == name)

    def node(self, node_id: int) -> Node:
        return T.by_id(self.nodes)[node_id]

    def best_leaf(self) -> Node | None:
        return T.best_leaf(self.nodes, self.objective, self.max_depth, self.reevaluated)

    def best_path(self) -> list[Node]:
        """Root-to-leaf path of the best finished segment (root first); empty if nothing finished."""
        best = self.best_leaf()
        return T.path_to(self.nodes, best.id) if best else []

    def fixed_path(self) -> list[Node]:
        return T.fixed_path(self.nodes)

    def top_paths(self, k: int) -> list[list[Node]]:
        """The ``k`` best root-to-leaf paths, best first (the first is :meth:`best_path`).

        Leaves are finished (``done``) segments ranked like :func:`searchmgr.tree.best_leaf`:
        complete schedules (depth == max_depth) first, then by validation utility (ties by the task's tie-break),
        the top re-ranked by fresh evaluations when ``select.reevaluate`` made them.
        """
        ranked = T.ranked_leaves(self.nodes, self.objective, self.max_depth, self.reevaluated)
        return [T.path_to(self.nodes, n.id) for n in ranked[:k]]

    def steps_used(self) -> int:
        return T.steps_used(self.nodes)


def _objective(row: dict) -> Objective:
    """The objective of a stored run; from its info or task class, else a val/loss guess."""
    from searchmgr.tasks import TaskError, stored_objective

    try:
        return stored_objective(row)
    except TaskError:
        return Objective("val/loss", Direction.MINIMIZE, "test/loss")


def load_run(run_dir: str | Path) -> RunData:
    """Read the run at ``run_dir`` (a directory made by ``searchmgr explore``)."""
    run_dir = Path(run_dir)
    with open_run(run_dir) as store:
        row = store.search()
        row["config"] = stored_config(row).model_dump(mode="json")
        nodes = tuple(store.nodes(row["id"]))
        metrics = {n.id: store.metrics(n.id) for n in nodes}
        decisions = {n.id: (store.decision(n.decision_id).parsed if n.decision_id else None) for n in nodes}
        records = store.decisions(row["id"])
        chosen = selection.recorded(store, row["id"])
        state = read_run(store, row["id"], run_dir).line()
    manager = [d for d in records if d.kind is DecisionKind.MANAGER]
    counts = DecisionCounts(
        accepted=sum(d.verdict == "accepted" for d in manager),
        rejected=sum(d.verdict == "rejected" for d in manager),
        errors=sum(d.verdict == "error" for d in manager),
        stopper_stops=sum(d.kind is DecisionKind.STOPPER and d.applied for d in records),
    )
    return RunData(
        run_dir=run_dir, task=row["task"], config=row["config"], info=row["info"],
        objective=_objective(row),
        knobs=tuple(KnobInfo.from_description(d) for d in row["surface"]),
        nodes=nodes, metrics=metrics, decisions=decisions, counts=counts, state=state, selection=chosen)
