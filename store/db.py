"""The search tree in SQLite (sqlite-utils): the single source of truth of a run.

Storage contract
----------------
* Tables: ``searches`` (one per run, with its lifecycle :class:`RunState` in ``state``, written by the
  owner only), ``nodes`` (the tree), ``metrics`` (namespaced
  key/value per node and step), ``decisions`` (every manager and stopper request:
  context, raw response, verdict, whether it was applied; for supervised runs also the
  snapshot step, recipe version and applied step), ``events`` (a log), ``supervision``
  (the settings of runs made by ``searchmgr supervise``),
  ``commands`` (a person's requests from the service, applied by the search only:
  :mod:`searchmgr.commands`), ``revision`` (a counter that triggers bump on every
  change; ``nodes.rev`` is the revision of a node's last change) and ``migrations``
  (schema changes applied, by name).
* Every state change is one transaction through :meth:`TreeStore.atomic`; a node's
  completion (status, scores, checkpoint reference, UCT backup along its path)
  commits at once or not at all. Transactions take the write lock up front
  (``BEGIN IMMEDIATE``) and wait up to ``BUSY_TIMEOUT_S`` for it, so a second
  writer (the service queueing a command) never makes them fail.
* :meth:`TreeStore.read_only` opens a store for readers in other processes or
  threads (the service, ``show``, ``export``, reports): no migration, no write,
  never a lock the search waits on; damaged contents raise :class:`CorruptStore`.
* Objects handed out (:class:`Node`, :class:`DecisionRecord`) are frozen snapshots;
  the tree changes only through store methods.
* A node left ``RUNNING`` by a dead process is turned ``INTERRUPTED`` by
  :meth:`TreeStore.interrupt_running` and retried by the search; finished nodes
  (``DONE``, ``PRUNED``, ``FAILED``) never change again, except that
  :meth:`TreeStore.drop_checkpoint` clears the checkpoint of a node (retention, or
  repair when its file is missing or corrupt), so nothing branches from it.
* Text that came from outside (decisions, reasons, errors, events) is redacted
  (:class:`searchmgr.sanitize.Redactor`) and capped as it enters the store.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import sqlite_utils

from searchmgr.errors import UserError
from searchmgr.sanitize import MAX_ANSWER_CHARS, MAX_STORED_CHARS, Redactor, cap
from searchmgr.store import faults
from searchmgr.store.space import disk_full, is_full


class StoreError(UserError, RuntimeError):
    """Base of the store's errors."""


class CorruptStore(StoreError):
    """The database file cannot be read as a searchmgr store."""


class NodeNotFound(StoreError, KeyError):
    """A node id the run does not have (also a KeyError, for callers that catch that)."""

    __str__ = BaseException.__str__  # the message itself, not KeyError's quoted repr of it


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


class DecisionVerdict(str, enum.Enum):
    """A decision row's verdict, what became of one request: a manager's answer is accepted, rejected (by the
    verifier, whose own result is :class:`searchmgr.decision.Verification`), an error (no answer) or stale
    (answered for a tree that changed); a stopper's verdict is stop or continue."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERROR = "error"
    STALE = "stale"
    STOP = "stop"
    CONTINUE = "continue"


class CommandKind(str, enum.Enum):
    """What a person asked the search to do (through the service)."""

    CHILD = "child"  # train this child of a node next
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    CLOSE = "close"  # never expand this node's subtree again


class CommandStatus(str, enum.Enum):
    QUEUED = "queued"  # written by the service, not yet seen by the search
    APPLIED = "applied"
    REJECTED = "rejected"  # the search could not apply it (``result`` says why)
    MOOT = "moot"  # overtaken before it could apply: the run stopped first (``result`` says how)


class RunState(str, enum.Enum):
    """A run's lifecycle as its owner writes it (:meth:`TreeStore.set_run_state`). Readers check a live state
    against the owner lock: a live state without a live owner is an interrupted run
    (:mod:`searchmgr.lifecycle`)."""

    CREATED = "created"  # being built, or built and not yet started
    RUNNING = "running"
    PAUSED = "paused"  # by a person's command: segments in training finish, nothing new starts
    STOPPING = "stopping"  # a stop command or a signal: segments in training end, then the owner exits
    STOPPED = "stopped"  # stopped before its end (command, signal); ``--resume`` continues
    FINISHED = "finished"  # a budget spent, the tree exhausted, the horizon trained
    FAILED = "failed"  # the owner ended on an error (``state_reason`` says which)

    @property
    def live(self) -> bool:
        """Only a live owner can be in this state: without one, the run was interrupted."""
        return self in (RunState.CREATED, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING)


class EventKind(str, enum.Enum):
    """What an ``events`` row records. Run events have no node; node events name theirs."""

    CREATED = "created"
    RESUMED = "resumed"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    STOPPED = "stopped"  # the owner ended the run (its message says why)
    INTERRUPTED = "interrupted"  # the run's owner stopped by a signal or found nodes a dead owner left running
    NODE_INTERRUPTED = "node_interrupted"  # a worker died or a signal stopped the node; it is retried
    FAILED = "failed"  # a node's segment failed
    CLOSED = "closed"  # a parent with no admissible distinct child
    CLOSED_SUBTREE = "closed_subtree"  # a person closed a subtree
    CHECKPOINT_DELETED = "checkpoint_deleted"  # retention
    CHECKPOINT_DAMAGED = "checkpoint_damaged"  # repair
    SKIPPED = "skipped"  # supervise asked nothing at a boundary
    COMMAND = "command"  # a person's command applied to a supervised run
    REEVALUATED = "reevaluated"  # select.reevaluate: the top schedules evaluated afresh (data: their scores)


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
    rev: int = 0  # the run's revision at this node's last change (see ``revision``)

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @classmethod
    def from_row(cls, row: dict) -> "Node":
        r = dict(row)
        try:
            r["recipe"] = json.loads(r["recipe"])
            r["status"] = NodeStatus(r["status"])
            if not isinstance(r["recipe"], dict) or not all(isinstance(v, (int, float)) for v in r["recipe"].values()):
                raise ValueError("the recipe is not a mapping of knob names to numbers")
            return cls(**r)
        except (ValueError, TypeError, KeyError) as e:
            raise CorruptStore(f"node {r.get('id')} is damaged ({type(e).__name__}: {cap(str(e), 200)}); "
                               "the run's tree.db was edited or corrupted: restore it from a copy or start a "
                               "new run") from None


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
    verdict: DecisionVerdict
    reason: str | None
    applied: bool
    latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: float
    rejection: str | None = None  # the verifier's rejection kind (searchmgr.decision.RejectionKind value)
    # live supervision (``searchmgr supervise``; None in searches): the step of the telemetry snapshot the request
    # was built from, the recipe version it was made against, and the step where the answer was applied
    snapshot_step: int | None = None
    recipe_version: int | None = None
    applied_step: int | None = None

    @classmethod
    def from_row(cls, row: dict) -> "DecisionRecord":
        r = dict(row)
        try:
            r["kind"] = DecisionKind(r["kind"])
            r["verdict"] = DecisionVerdict(r["verdict"])
            r["applied"] = bool(r["applied"])
            r["context"] = json.loads(r["context"]) if r["context"] else None
            r["parsed"] = json.loads(r["parsed"]) if r["parsed"] else None
            return cls(**r)
        except (ValueError, TypeError, KeyError) as e:
            raise CorruptStore(f"decision {r.get('id')} is damaged ({type(e).__name__}: {cap(str(e), 200)}); "
                               "restore tree.db from a copy or start a new run") from None


@dataclass(frozen=True)
class CommandRecord:
    id: int
    search_id: int
    kind: CommandKind
    node_id: int | None
    payload: Any
    status: CommandStatus
    result: str | None
    child_id: int | None  # the node a CHILD command created
    created_at: float
    applied_at: float | None

    @classmethod
    def from_row(cls, row: dict) -> "CommandRecord":
        r = dict(row)
        r["kind"] = CommandKind(r["kind"])
        r["status"] = CommandStatus(r["status"])
        r["payload"] = json.loads(r["payload"]) if r["payload"] else None
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


def _create_commands(db: sqlite_utils.Database) -> None:
    db["commands"].create({
        "id": int, "search_id": int, "kind": str, "node_id": int, "payload": str, "status": str, "result": str,
        "child_id": int, "created_at": float, "applied_at": float,
    }, pk="id", foreign_keys=[("search_id", "searches", "id")], not_null={"kind", "status"})
    db["commands"].create_index(["search_id", "status"])


# tables whose every insert (and update) bumps the run's revision; nodes also record it in ``rev``
_REVISED = {"nodes": True, "metrics": False, "decisions": True, "events": False, "commands": True,
            "closed": False}


def _create_revisions(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)")
    db.execute("INSERT INTO revision VALUES (1, 1)")
    db["nodes"].add_column("rev", int, not_null_default=1)  # rows from before the migration: revision 1
    bump = "UPDATE revision SET n = n + 1;"
    for table, updates in _REVISED.items():
        stamp = "UPDATE nodes SET rev = (SELECT n FROM revision) WHERE id = NEW.id;" if table == "nodes" else ""
        db.execute(f"CREATE TRIGGER {table}_rev_insert AFTER INSERT ON {table} BEGIN {bump} {stamp} END")
        if updates:
            guard = "WHEN NEW.rev IS OLD.rev" if table == "nodes" else ""  # not for the stamp itself
            db.execute(f"CREATE TRIGGER {table}_rev_update AFTER UPDATE ON {table} {guard} BEGIN {bump} {stamp} END")


def _add_supervision(db: sqlite_utils.Database) -> None:
    """``searchmgr supervise``: the trace of asynchronous decisions, and which runs are supervised (with what)."""
    for column in ("snapshot_step", "recipe_version", "applied_step"):
        db["decisions"].add_column(column, int)
    db["supervision"].create({"search_id": int, "settings": str, "created_at": float}, pk="search_id",
                             foreign_keys=[("search_id", "searches", "id")])


def _add_run_state(db: sqlite_utils.Database) -> None:
    """The run's lifecycle as data (:class:`RunState`), backfilled from the newest lifecycle event."""
    db["searches"].add_column("state", str)
    db["searches"].add_column("state_reason", str)
    db["searches"].add_column("state_at", float)
    for row in list(db["searches"].rows):
        last = list(db["events"].rows_where(
            "search_id = ? AND kind IN ('created', 'resumed', 'unpaused', 'paused', 'stopped', 'interrupted')",
            [row["id"]], order_by="id DESC", limit=1))
        kind, message = (last[0]["kind"], last[0]["message"] or "") if last else ("stopped", "")
        state = {"paused": RunState.PAUSED, "interrupted": RunState.STOPPED}.get(kind, RunState.RUNNING)
        if kind == "stopped":
            state = RunState.STOPPED if message.startswith("stopped by") else RunState.FINISHED
        db["searches"].update(row["id"], {"state": state.value, "state_reason": message or None,
                                          "state_at": last[0]["created_at"] if last else _now()})


MIGRATIONS = [("0001_initial", _create_v1), ("0002_coordinator", _coordinator_v2),
              ("0002_commands", _create_commands), ("0003_serve_revisions", _create_revisions),
              ("0004_supervise", _add_supervision), ("0005_run_state", _add_run_state)]
BUSY_TIMEOUT_S = 30.0  # how long a transaction waits for another writer's (short) transaction
TABLES = ("searches", "nodes", "metrics", "decisions", "events")  # without them, nothing can be read


class TreeStore:
    """A run's tree database. Use as a context manager or call :meth:`close`.

    ``redact`` is applied to every text that enters the store.
    """

    def __init__(self, path: str | Path, *, _mode: Literal["migrate", "ro", "rw"] = "migrate",
                 redact: Redactor = Redactor()):
        self.path = Path(path)
        self.readonly = _mode == "ro"
        self.redact = redact
        if self.path.exists() and self.path.stat().st_size == 0:  # SQLite would take it for a new, empty store
            raise CorruptStore(f"{self.path} is empty (0 bytes): the run was never written or was truncated; "
                               "restore it from a copy or start a new run")
        try:
            if _mode == "migrate":
                self.db = sqlite_utils.Database(self.path)
                self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
            else:  # an existing store, as it is: read-only, or for queueing commands
                uri = f"{self.path.resolve().as_uri()}?mode={_mode}"
                self.db = sqlite_utils.Database(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S,
                                                                check_same_thread=False))
                missing = [name for name, _ in MIGRATIONS if name not in self.migrations()]
                if missing:
                    raise StoreError(f"{self.path} predates migrations {missing}; let its owner upgrade it once "
                                     f"(`searchmgr repair {self.path.parent}` or `explore --resume`) and try again")
            missing = [t for t in TABLES if not self.db[t].exists()]
            if missing:
                raise CorruptStore(f"{self.path} lacks the table(s) {missing}: it is not a complete searchmgr "
                                   "store; restore it from a copy or start a new run")
        except sqlite3.DatabaseError as e:
            raise CorruptStore(
                f"{self.path} is not a readable searchmgr store ({e}); point at a run directory made by "
                "`searchmgr explore`, or start a new run"
            ) from None

    @classmethod
    def read_only(cls, path: str | Path) -> "TreeStore":
        """Open for reading only (``mode=ro``): what the service and other processes use while a search runs."""
        if not Path(path).exists():
            raise StoreError(f"no store at {path}")
        return cls(path, _mode="ro")

    @classmethod
    def for_commands(cls, path: str | Path) -> "TreeStore":
        """Open an existing store without migrating it, to :meth:`queue_command` (the service's only write)."""
        if not Path(path).exists():
            raise StoreError(f"no store at {path}")
        return cls(path, _mode="rw")

    def migrations(self) -> set[str]:
        if not self.db["migrations"].exists():
            return set()
        return {r["name"] for r in self.db["migrations"].rows}

    def _migrate(self) -> None:
        if not self.db["migrations"].exists():
            with self.atomic():
                self.db["migrations"].create({"name": str, "applied_at": float}, pk="name", if_not_exists=True)
        done = self.migrations()
        for name, fn in MIGRATIONS:
            if name not in done:
                with self.atomic():
                    if name in self.migrations():  # another connection (a reader opening the new run) applied it
                        continue
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
        """One transaction (nested blocks become savepoints).

        The outermost block takes the write lock at once (``BEGIN IMMEDIATE``): a deferred
        transaction that read first would fail with "database is locked" if another
        connection wrote in between, rather than wait. Its start is a kill point of the
        kill test (:mod:`searchmgr.store.faults`).
        """
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; writing needs the run's owner "
                             "(`searchmgr explore --resume` or `searchmgr repair`)")
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        faults.point()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:  # the transaction failed whole: a full disk damages nothing
            if is_full(e):
                raise disk_full(self.path.parent, f"writing {self.path.name}") from e
            raise

    def _text(self, text: str | None, limit: int = MAX_STORED_CHARS) -> str | None:
        """Outside text as stored: secrets redacted, size capped."""
        return None if text is None else cap(self.redact(text), limit)

    def _json(self, value: Any) -> str | None:
        """A JSON value as stored: every string in it redacted and capped (the JSON stays valid)."""
        def clean(v: Any) -> Any:
            if isinstance(v, str):
                return self._text(v)
            if isinstance(v, dict):
                return {clean(str(k)): clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v if v is None or isinstance(v, (bool, int, float)) else clean(str(v))

        return None if value is None else json.dumps(clean(value))

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
        for k, kind in (("config", dict), ("surface", list), ("info", dict)):
            try:
                out[k] = json.loads(out[k])
            except (TypeError, ValueError):
                out[k] = None
            if not isinstance(out[k], kind) or (k != "info" and not out[k]):
                raise CorruptStore(f"the stored {k} of {self.path} is damaged or empty; restore tree.db from a "
                                   "copy or start a new run")
        return out

    def set_run_state(self, search_id: int, state: RunState, reason: str | None = None) -> None:
        """The owner records the run's lifecycle (no revision bump: a state is not a change of the tree)."""
        with self.atomic():
            self.db["searches"].update(search_id, {"state": RunState(state).value,
                                                   "state_reason": self._text(reason), "state_at": _now()})

    def run_state(self, search_id: int) -> tuple[RunState, str | None]:
        """The run's lifecycle as its owner last wrote it, and why."""
        row = self.db.execute("SELECT state, state_reason FROM searches WHERE id = ?", [search_id]).fetchone()
        if row is None:
            raise StoreError(f"no search {search_id} in {self.path}")
        try:
            return RunState(row[0] or RunState.CREATED.value), row[1]
        except ValueError:
            raise CorruptStore(f"the run state {cap(str(row[0]), 40)!r} of {self.path} is not one of "
                               f"{[s.value for s in RunState]}; restore tree.db from a copy") from None

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
            raise NodeNotFound(f"no node {node_id} in {self.path}") from None

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
                    backup: dict[int, tuple[int, float]] | None = None, end_step: int | None = None) -> None:
        """Record a finished segment and its UCT backup in one transaction. ``end_step`` ends the segment
        earlier than planned (a supervised run splits its segment where a decision is applied)."""
        if not status.finished:
            raise ValueError(f"finish_node needs a finished status, not {status.value}")
        fields = {} if end_step is None else {"end_step": end_step}
        with self.atomic():
            self.set_status(node_id, status, val_score=val_score, test_score=test_score, utility=utility,
                            steps_trained=steps_trained, train_s=train_s, checkpoint=checkpoint,
                            checkpoint_sha256=checkpoint_sha256, error=self._text(error), finished_at=_now(), **fields)
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
                               [node_id]):  # SQLite stores NaN as NULL
            out.setdefault(r["step"], {})[r["key"]] = math.nan if r["value"] is None else r["value"]
        return sorted(out.items())

    def series(self, key: str) -> dict[int, list[float]]:
        """Every node's values of one metric in step order, in one query: ``{node_id: [value, ...]}``."""
        out: dict[int, list[float]] = {}
        for r in self.db.query("SELECT node_id, value FROM metrics WHERE key = ? ORDER BY node_id, step, rowid",
                               [key]):
            out.setdefault(r["node_id"], []).append(math.nan if r["value"] is None else r["value"])
        return out

    # decisions ----------------------------------------------------------------
    def add_decision(self, search_id: int, node_id: int | None, kind: DecisionKind, source: str, *,
                     verdict: str, reason: str | None = None, context: Any = None, raw_response: str | None = None,
                     parsed: Any = None, attempt: int = 0, prompt_version: str | None = None,
                     prompt_hash: str | None = None, latency_s: float | None = None,
                     prompt_tokens: int | None = None, completion_tokens: int | None = None,
                     applied: bool = False, rejection: str | None = None, snapshot_step: int | None = None,
                     recipe_version: int | None = None, applied_step: int | None = None) -> int:
        with self.atomic():
            return self.db["decisions"].insert({
                "rejection": rejection,
                "search_id": search_id, "node_id": node_id, "kind": kind.value, "source": source,
                "attempt": attempt, "prompt_version": prompt_version, "prompt_hash": prompt_hash,
                "context": self._json(context),
                "raw_response": self._text(raw_response if raw_response is None or isinstance(raw_response, str)
                                           else json.dumps(raw_response, default=str), MAX_ANSWER_CHARS),
                "parsed": self._json(parsed),
                "verdict": DecisionVerdict(verdict).value, "reason": self._text(reason), "applied": int(applied),
                "latency_s": latency_s,
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "created_at": _now(),
                "snapshot_step": snapshot_step, "recipe_version": recipe_version, "applied_step": applied_step,
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

    def drop_checkpoint(self, node_id: int, reason: str, kind: EventKind = EventKind.CHECKPOINT_DELETED) -> None:
        """Forget a node's checkpoint: retention records it before the file is deleted, so resume never needs it;
        repair (``kind=EventKind.CHECKPOINT_DAMAGED``) when the file is missing or corrupt, so nothing branches
        from it."""
        node = self.node(node_id)
        with self.atomic():
            self.db["nodes"].update(node_id, {"checkpoint": None})
            self.add_event(node.search_id, kind, reason, node_id=node_id,
                           data={"checkpoint": node.checkpoint, "sha256": node.checkpoint_sha256})

    # supervision ----------------------------------------------------------------
    def set_supervision(self, search_id: int, settings: dict) -> None:
        """Mark the run as supervised (``searchmgr supervise``) with these settings, or update them."""
        with self.atomic():
            self.db["supervision"].upsert({"search_id": search_id, "settings": json.dumps(settings),
                                           "created_at": _now()}, pk="search_id")

    def supervision(self, search_id: int) -> dict | None:
        """The settings of a supervised run; None for a search."""
        rows = list(self.db["supervision"].rows_where("search_id = ?", [search_id]))
        return json.loads(rows[0]["settings"]) if rows else None

    # events -------------------------------------------------------------------
    def add_event(self, search_id: int, kind: EventKind, message: str, node_id: int | None = None,
                  data: Any = None) -> None:
        with self.atomic():
            self.db["events"].insert({"search_id": search_id, "node_id": node_id, "kind": EventKind(kind).value,
                                      "message": self._text(message), "data": self._json(data) if data else None,
                                      "created_at": _now()})

    def events(self, search_id: int) -> list[dict]:
        return list(self.db["events"].rows_where("search_id = ?", [search_id], order_by="id"))

    def last_event(self, search_id: int, kinds: tuple[EventKind, ...]) -> dict | None:
        """The newest event of one of ``kinds``."""
        rows = list(self.db["events"].rows_where(
            f"search_id = ? AND kind IN ({', '.join('?' * len(kinds))})",
            [search_id, *(EventKind(k).value for k in kinds)],
            order_by="id DESC", limit=1))
        return rows[0] if rows else None

    # commands (queued by the service, applied by the search) ---------------------
    def queue_command(self, search_id: int, kind: CommandKind, node_id: int | None = None,
                      payload: Any = None) -> int:
        with self.atomic():
            return self.db["commands"].insert({
                "search_id": search_id, "kind": kind.value, "node_id": node_id,
                "payload": self._json(payload),
                "status": CommandStatus.QUEUED.value, "created_at": _now()}).last_pk

    def commands(self, search_id: int, status: CommandStatus | None = None) -> list[CommandRecord]:
        where, args = "search_id = ?", [search_id]
        if status is not None:
            where, args = where + " AND status = ?", args + [status.value]
        return [CommandRecord.from_row(r) for r in self.db["commands"].rows_where(where, args, order_by="id")]

    def settle_command(self, command_id: int, status: CommandStatus, result: str,
                       child_id: int | None = None) -> None:
        with self.atomic():
            self.db["commands"].update(command_id, {"status": status.value, "result": result,
                                                    "child_id": child_id, "applied_at": _now()})

    def revision(self) -> int:
        """The run's change counter: any write to nodes, metrics, decisions, events or commands raises it."""
        return self.db.execute("SELECT n FROM revision").fetchone()[0]
