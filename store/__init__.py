"""Persistence: the SQLite tree (sqlite-utils) and checkpoint files."""

from searchmgr.store.checkpoints import CheckpointCorrupt, load_checkpoint, roundtrip, save_checkpoint
from searchmgr.store.space import DiskFull
from searchmgr.store.db import (
    CommandKind, CommandRecord, CommandStatus, CorruptStore, DecisionKind, DecisionRecord, DecisionVerdict, EventKind,
    Node, NodeNotFound, NodeStatus, RunState, StoreError, TreeStore,
)

__all__ = [
    "CheckpointCorrupt", "load_checkpoint", "roundtrip", "save_checkpoint", "CommandKind", "CommandRecord", "CommandStatus",
    "CorruptStore", "DecisionKind", "DecisionRecord", "DecisionVerdict", "DiskFull", "EventKind", "RunState",
    "Node", "NodeNotFound", "NodeStatus", "StoreError", "TreeStore",
]
