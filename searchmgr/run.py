"""Read a run: what ``searchmgr show`` prints, as Python values (the CLI's ``show``, ``export`` and
``compare`` and the service's schedule read runs through it).

::

    import searchmgr

    run = searchmgr.Run("runs/toy3")      # read once, read-only: the database is not held open
    run.best.val_score, [n.id for n in run.best_path], run.fixed.val_score
    run.state.line()                       # e.g. "finished: step budget (400) exhausted; to train more ..."
    run.disk()                             # checkpoints kept, their bytes, and any damage
    run.decisions()                        # every traced decision (managers, stoppers, a person's commands)

A :class:`Run` is a snapshot: nodes are frozen :class:`~searchmgr.store.Node` records, and reading it
never changes the run, whoever owns it at the time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from searchmgr import selection
from searchmgr import tree as T
from searchmgr.config import SearchConfig
from searchmgr.lifecycle import RunView, read_run
from searchmgr.objective import Objective
from searchmgr.rundir import open_run, stored_config
from searchmgr.store import DecisionKind, DecisionRecord, EventKind, Node, TreeStore
from searchmgr.tasks import stored_objective


@dataclass(frozen=True)
class Disk:
    """The run's checkpoints on disk."""

    kept: int  # nodes whose checkpoint the run keeps (``checkpoints.keep``)
    bytes: int  # their size on disk
    keep: str  # the retention setting
    damaged: tuple[str, ...]  # one line per missing or corrupt checkpoint (``searchmgr repair`` takes them out)


class Run:
    """One run directory, read once (``Run(path)``), or from a store already open (:meth:`of`)."""

    path: Path
    search_id: int
    task: str
    config: SearchConfig
    objective: Objective
    info: Mapping[str, Any]  # what the run recorded of its task (source, objective, family ...)
    nodes: tuple[Node, ...]  # every node, root first, in id order
    best: Node | None  # the best finished segment (complete schedules first; re-evaluations count)
    state: RunView  # its lifecycle, checked against the owner lock
    wall_s: float  # seconds its searches took, over every session

    def __init__(self, path: str | Path):
        with open_run(path) as store:
            self._read(store, Path(path))

    @classmethod
    def of(cls, store: TreeStore, path: str | Path) -> "Run":
        """The run in ``store`` (open, read-only or not) whose directory is ``path``."""
        run = cls.__new__(cls)
        run._read(store, Path(path))
        return run

    def _read(self, store: TreeStore, path: Path) -> None:
        row = store.search()
        self.path, self.search_id, self.task, self.info = path, row["id"], row["task"], row["info"]
        self.config = stored_config(row)
        self.objective = stored_objective(row)
        self.nodes = tuple(store.nodes(self.search_id))
        self.best = selection.best_leaf(store, self.search_id, self.nodes, self.objective, self.config.max_depth)
        self.state = read_run(store, self.search_id, path)
        self.wall_s = sum(json.loads(e["data"] or "{}").get("wall_s", 0.0) for e in store.events(self.search_id)
                          if e["kind"] == EventKind.STOPPED.value)

    @property
    def best_path(self) -> tuple[Node, ...]:
        """Root to the best finished segment (root first); empty when nothing finished."""
        return tuple(T.path_to(self.nodes, self.best.id)) if self.best else ()

    @property
    def fixed_path(self) -> tuple[Node, ...]:
        """Root to the tip of the fixed path (the base recipe held for every segment)."""
        return tuple(T.fixed_path(self.nodes))

    @property
    def fixed(self) -> Node:
        """The fixed path's tip (the root while it has no segment)."""
        return self.fixed_path[-1]

    @property
    def steps_used(self) -> int:
        return T.steps_used(self.nodes)

    def node(self, node_id: int) -> Node:
        return T.by_id(self.nodes)[node_id]

    def decisions(self, node_id: int | None = None, kind: DecisionKind | None = None) -> list[DecisionRecord]:
        """The run's traced decisions (about ``node_id`` and of ``kind`` when given), oldest first."""
        with open_run(self.path) as store:
            return store.decisions(self.search_id, node_id, kind)

    def disk(self) -> Disk:
        """Its checkpoints on disk, and any damage (reads every kept checkpoint's bytes to check them)."""
        from searchmgr.repair import damage_lines

        kept = [self.path / n.checkpoint for n in self.nodes if n.checkpoint]
        with open_run(self.path) as store:
            damage = damage_lines(store, self.path, self.search_id)
        return Disk(len(kept), sum(p.stat().st_size for p in kept if p.exists()), self.config.checkpoints.keep,
                    tuple(damage))
