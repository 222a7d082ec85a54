"""The search tree in SQLite (sqlite-utils): the single source of truth of a run.

Storage contract
----------------
* Tables: ``searches`` (one per run), ``nodes`` (the tree), ``metrics`` (namespaced
  key/value per node and step), ``decisions`` (every manager and stopper request:
  context, raw response, verdict, whether it was applied), ``events`` (a log) and
  ``migrations`` (schema changes applied, by name).
* Every state change is one transaction through :meth:`TreeStore.atomic`; a node's
  completion (status, scores, checkpoint reference, UCT backup along its path)
  commits at once or not at all.
* Objects handed out (:class:`Node`, :class:`DecisionRecord`) are frozen snapshots;
  the tree changes only through store methods.
* A node left ``RUNNING`` by a dead process is turned ``INTERRUPTED`` by
  :meth:`TreeStore.interrupt_running` and retried by the search; finished nodes
  (``DONE``, ``PRUNED``, ``FAILED``) never change again.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils


class StoreError(RuntimeError):
    """Base of the store's errors."""


class CorruptStore(StoreError):
    """The database file cannot be read as a searchmgr store."""


class NodeNotFound(StoreError, KeyError):
    pass


class NodeStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    PRUNED = "pruned"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Finished nodes never change again."""
        return self in (NodeStatus.DONE, NodeStatus.PRUNED, NodeStatus.FAILED)

    @property
    def expandable(self) -> bool:
        """Only a segment trained to its end has a checkpoint to branch from."""
        return self is NodeStatus.DONE


class DecisionKind(str, enum.Enum):
    MANAGER = "manager"
    STOPPER = "stopper"


class Verdict(str, enum.Enum):
    """What became of one request: a manager's answer is accepted, rejected (by the verifier), an error (no
    answer) or stale (answered for a tree that changed); a stopper's verdict is stop or continue."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERROR = "error"
    STALE = "stale"
    STOP = "stop"
    CONTINUE = "continue"


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Node:
    id: int
    search_id: int
    parent_id: int | None
    depth: int
    start_step: int
    end_step: int
    recipe: dict[str, float]
    status: NodeStatus
    source: str
    val_score: float | None
    test_score: float | None
    utility: float | None
    visits: int
    value_sum: float
    steps_trained: int
    train_s: float | None  # seconds inside training (excluding the search's own callbacks)
    checkpoint: str | None
    checkpoint_sha256: str | None
    decision_id: int | None
    error: str | None
    created_at: float
    finished_at: float | None
    started_at: float | None = None  # when an executor last started training it

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @classmethod
    def from_row(cls, row: dict) -> "Node":
        r = dict(row)
        r["recipe"] = json.loads(r["recipe"])
        r["status"] = NodeStatus(r["status"])
        return cls(**r)


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    search_id: int
    node_id: int | None  # the node the decision is about (parent for a manager, segment for a stopper)
    child_id: int | None  # the node it created, when applied
    kind: DecisionKind
    source: str
    attempt: int
    prompt_version: str | None
    prompt_hash: str | None
    context: Any
    raw_response: str | None
    parsed: Any
    verdict: Verdict
    reason: str | None
    applied: bool
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: float
    rejection: str | None = None  # the verifier's rejection kind (searchmgr.decision.RejectionKind value)

    @classmethod
    def from_row(cls, row: dict) -> "DecisionRecord":
        r = dict(row)
        r["kind"] = DecisionKind(r["kind"])
        r["verdict"] = Verdict(r["verdict"])
        r["applied"] = bool(r["applied"])
        r["context"] = json.loads(r["context"]) if r["context"] else None
        r["parsed"] = json.loads(r["parsed"]) if r["parsed"] else None
        return cls(**r)


def _create_v1(db: sqlite_utils.Database) -> None:
    db["searches"].create({
        "id": int, "task": str, "config": str, "surface": str, "surface_fingerprint": str,
        "info": str, "created_at": float,
    }, pk="id")
    db["nodes"].create({
        "id": int, "search_id": int, "parent_id": int, "depth": int, "start_step": int, "end_step": int,
        "recipe": str, "status": str, "source": str, "val_score": float, "test_score": float, "utility": float,
        "visits": int, "value_sum": float, "steps_trained": int, "train_s": float, "checkpoint": str, "checkpoint_sha256": str,
        "decision_id": int, "error": str, "created_at": float, "finished_at": float,
    }, pk="id", foreign_keys=[("search_id", "searches", "id")], not_null={"status", "recipe"},
        defaults={"visits": 0, "value_sum": 0.0, "steps_trained": 0})
    db["nodes"].create_index(["search_id", "parent_id"])
    db["metrics"].create({"node_id": int, "step": int, "key": str, "value": float},
                         foreign_keys=[("node_id", "nodes", "id")])
    db["metrics"].create_index(["node_id", "step"])
    db["decisions"].create({
        "id": int, "search_id": int, "node_id": int, "child_id": int, "kind": str, "source": str, "attempt": int,
        "prompt_version": str, "prompt_hash": str, "context": str, "raw_response": str, "parsed": str,
        "verdict": str, "reason": str, "applied": int, "latency_s": float, "prompt_tokens": int,
        "completion_tokens": int, "created_at": float,
    }, pk="id", defaults={"applied": 0, "attempt": 0})
    db["decisions"].create_index(["search_id", "node_id"])
    db["events"].create({"id": int, "search_id": int, "node_id": int, "kind": str, "message": str,
                         "data": str, "created_at": float}, pk="id")


def _coordinator_v2(db: sqlite_utils.Database) -> None:
    """Rejection kinds in a column (backfilled from the reason's prefix), and closed parents as rows."""
    db["decisions"].add_column("rejection", str)
    db.execute("UPDATE decisions SET rejection = substr(reason, 1, instr(reason, ':') - 1) "
               "WHERE verdict = 'rejected' AND instr(reason, ':') > 0")
    db["closed"].create({"search_id": int, "node_id": int, "reason": str, "created_at": float},
                        pk="node_id", foreign_keys=[("node_id", "nodes", "id")])
    db["nodes"].add_column("started_at", float)


MIGRATIONS = [("0001_initial", _create_v1), ("0002_coordinator", _coordinator_v2)]


class TreeStore:
    """A run's tree database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            if not self.db["searches"].exists():
                raise CorruptStore(f"{self.path} lacks the searches table")
        except sqlite3.DatabaseError as e:
            raise CorruptStore(
                f"{self.path} is not a readable searchmgr store ({e}); point at a run directory made by "
                "`searchmgr explore`, or start a new run"
            ) from None

    def _migrate(self) -> None:
        if not self.db["migrations"].exists():
            self.db["migrations"].create({"name": str, "applied_at": float}, pk="name")
        done = {r["name"] for r in self.db["migrations"].rows}
        for name, fn in MIGRATIONS:
            if name not in done:
                with self.atomic():
                    fn(self.db)
                    self.db["migrations"].insert({"name": name, "applied_at": _now()})

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "TreeStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction (nested blocks become savepoints)."""
        with self.db.atomic():
            yield

    # searches ---------------------------------------------------------------
    def create_search(self, task: str, config: dict, surface: list[dict], fingerprint: str, info: dict) -> int:
        with self.atomic():
            row = self.db["searches"].insert({
                "task": task, "config": json.dumps(config), "surface": json.dumps(surface),
                "surface_fingerprint": fingerprint, "info": json.dumps(info), "created_at": _now(),
            })
            return row.last_pk

    def search(self, search_id: int | None = None) -> dict:
        rows = list(self.db["searches"].rows_where(order_by="id"))
        if not rows:
            raise CorruptStore(f"{self.path} holds no search; start one with `searchmgr explore`")
        row = rows[0] if search_id is None else next((r for r in rows if r["id"] == search_id), None)
        if row is None:
            raise StoreError(f"no search {search_id} in {self.path}")
        out = dict(row)
        for k in ("config", "surface", "info"):
            out[k] = json.loads(out[k])
        return out

    def update_search_config(self, search_id: int, config: dict) -> None:
        with self.atomic():
            self.db["searches"].update(search_id, {"config": json.dumps(config)})

    # nodes ------------------------------------------------------------------
    def add_node(self, search_id: int, parent_id: int | None, depth: int, start_step: int, end_step: int,
                 recipe: dict, source: str, decision_id: int | None = None,
                 status: NodeStatus = NodeStatus.PENDING) -> Node:
        with self.atomic():
            pk = self.db["nodes"].insert({
                "search_id": search_id, "parent_id": parent_id, "depth": depth, "start_step": start_step,
                "end_step": end_step, "recipe": json.dumps(recipe), "status": status.value, "source": source,
                "decision_id": decision_id, "visits": 0, "value_sum": 0.0, "steps_trained": 0,
                "created_at": _now(),
            }).last_pk
            if decision_id is not None:
                self.db["decisions"].update(decision_id, {"applied": 1, "child_id": pk})
        return self.node(pk)

    def node(self, node_id: int) -> Node:
        try:
            return Node.from_row(self.db["nodes"].get(node_id))
        except sqlite_utils.db.NotFoundError:
            raise NodeNotFound(node_id) from None

    def nodes(self, search_id: int) -> list[Node]:
        return [Node.from_row(r) for r in self.db["nodes"].rows_where("search_id = ?", [search_id], order_by="id")]

    def set_status(self, node_id: int, status: NodeStatus, **fields: Any) -> None:
        current = self.node(node_id).status
        if current.finished:
            raise StoreError(f"node {node_id} is {current.value}; finished nodes never change")
        with self.atomic():
            self.db["nodes"].update(node_id, {"status": status.value, **fields})

    def start_node(self, node_id: int) -> None:
        """Mark a node running; metrics of an earlier, interrupted attempt are dropped."""
        with self.atomic():
            self.db.execute("DELETE FROM metrics WHERE node_id = ?", [node_id])
            self.set_status(node_id, NodeStatus.RUNNING, steps_trained=0, started_at=_now())

    def finish_node(self, node_id: int, status: NodeStatus, *, val_score: float | None, test_score: float | None,
                    utility: float | None, steps_trained: int, train_s: float | None = None, checkpoint: str | None = None,
                    checkpoint_sha256: str | None = None, error: str | None = None,
                    backup: dict[int, tuple[int, float]] | None = None) -> None:
        """Record a finished segment and its UCT backup in one transaction."""
        if not status.finished:
            raise ValueError(f"finish_node needs a finished status, not {status.value}")
        with self.atomic():
            self.set_status(node_id, status, val_score=val_score, test_score=test_score, utility=utility,
                            steps_trained=steps_trained, train_s=train_s, checkpoint=checkpoint,
                            checkpoint_sha256=checkpoint_sha256, error=error, finished_at=_now())
            for nid, (visits, value_sum) in (backup or {}).items():
                self.db["nodes"].update(nid, {"visits": visits, "value_sum": value_sum})

    def interrupt_running(self, search_id: int, node_ids: list[int] | None = None) -> list[int]:
        """Turn nodes left RUNNING by a dead process (or a dead worker: ``node_ids``) into INTERRUPTED;
        return their ids."""
        ids = [r["id"] for r in self.db["nodes"].rows_where(
            "search_id = ? AND status = ?", [search_id, NodeStatus.RUNNING.value])
            if node_ids is None or r["id"] in node_ids]
        with self.atomic():
            for nid in ids:
                self.db["nodes"].update(nid, {"status": NodeStatus.INTERRUPTED.value})
        return ids

    # metrics ----------------------------------------------------------------
    def add_metrics(self, node_id: int, step: int, metrics: dict[str, float], steps_trained: int) -> None:
        with self.atomic():
            self.db["metrics"].insert_all(
                [{"node_id": node_id, "step": step, "key": k, "value": float(v)} for k, v in metrics.items()])
            self.db["nodes"].update(node_id, {"steps_trained": steps_trained})

    def metrics(self, node_id: int) -> list[tuple[int, dict[str, float]]]:
        """The node's evaluations in step order: ``[(step, {key: value})]``."""
        out: dict[int, dict[str, float]] = {}
        for r in self.db.query("SELECT step, key, value FROM metrics WHERE node_id = ? ORDER BY step, rowid",
                               [node_id]):
            out.setdefault(r["step"], {})[r["key"]] = r["value"]
        return sorted(out.items())

    # decisions ----------------------------------------------------------------
    def add_decision(self, search_id: int, node_id: int | None, kind: DecisionKind, source: str, *,
                     verdict: str, reason: str | None = None, context: Any = None, raw_response: str | None = None,
                     parsed: Any = None, attempt: int = 0, prompt_version: str | None = None,
                     prompt_hash: str | None = None, latency_s: float | None = None,
                     prompt_tokens: int | None = None, completion_tokens: int | None = None,
                     applied: bool = False, rejection: str | None = None) -> int:
        with self.atomic():
            return self.db["decisions"].insert({
                "rejection": rejection,
                "search_id": search_id, "node_id": node_id, "kind": kind.value, "source": source,
                "attempt": attempt, "prompt_version": prompt_version, "prompt_hash": prompt_hash,
                "context": json.dumps(context, default=str) if context is not None else None,
                "raw_response": raw_response if raw_response is None or isinstance(raw_response, str)
                else json.dumps(raw_response),
                "parsed": json.dumps(parsed) if parsed is not None else None,
                "verdict": Verdict(verdict).value, "reason": reason, "applied": int(applied), "latency_s": latency_s,
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "created_at": _now(),
            }).last_pk

    def decisions(self, search_id: int, node_id: int | None = None,
                  kind: DecisionKind | None = None) -> list[DecisionRecord]:
        where, args = ["search_id = ?"], [search_id]
        if node_id is not None:
            where.append("node_id = ?")
            args.append(node_id)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind.value)
        return [DecisionRecord.from_row(r)
                for r in self.db["decisions"].rows_where(" AND ".join(where), args, order_by="id")]

    def decision(self, decision_id: int) -> DecisionRecord:
        return DecisionRecord.from_row(self.db["decisions"].get(decision_id))

    # closed parents ---------------------------------------------------------------
    def close_node(self, search_id: int, node_id: int, reason: str) -> None:
        """Mark a node that no policy may expand again (no admissible distinct child, or closed by hand)."""
        with self.atomic():
            self.db["closed"].insert({"search_id": search_id, "node_id": node_id, "reason": reason,
                                      "created_at": _now()}, replace=True)

    def closed(self, search_id: int) -> frozenset[int]:
        return frozenset(r["node_id"] for r in self.db["closed"].rows_where("search_id = ?", [search_id]))

    def drop_checkpoint(self, node_id: int, reason: str) -> None:
        """Forget a node's checkpoint (recorded before the file is deleted, so resume never needs it)."""
        node = self.node(node_id)
        with self.atomic():
            self.db["nodes"].update(node_id, {"checkpoint": None})
            self.add_event(node.search_id, "checkpoint_deleted", reason, node_id=node_id,
                           data={"checkpoint": node.checkpoint})

    # events -------------------------------------------------------------------
    def add_event(self, search_id: int, kind: str, message: str, node_id: int | None = None,
                  data: Any = None) -> None:
        with self.atomic():
            self.db["events"].insert({"search_id": search_id, "node_id": node_id, "kind": kind,
                                      "message": message, "data": json.dumps(data, default=str) if data else None,
                                      "created_at": _now()})

    def events(self, search_id: int) -> list[dict]:
        return list(self.db["events"].rows_where("search_id = ?", [search_id], order_by="id"))
