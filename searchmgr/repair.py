"""Damaged checkpoints: find them, and take the nodes that hold them out of the search.

A node whose checkpoint file is missing, unreadable, outside the run directory or
fails its sha256 gets its ``checkpoint`` cleared (:meth:`TreeStore.drop_checkpoint`,
which logs a ``checkpoint_damaged`` event with the reason), so no policy selects it
as a parent again; its pending or interrupted children, which could only train from
it, become FAILED with the reason. Its finished descendants keep their own
checkpoints and stay usable. Nothing else changes, so the search simply goes on.

``searchmgr repair RUN`` runs :func:`repair`; ``explore --resume`` runs it before
training; the coordinator runs :func:`quarantine` when a worker cannot load a parent.
``show`` and ``export`` list the damage with :func:`damage_lines`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Sequence

from searchmgr.store import EventKind, Node, NodeStatus, TreeStore
from searchmgr.store.digests import file_sha256


@dataclass(frozen=True)
class Damage:
    node_id: int
    checkpoint: str
    reason: str


def check_checkpoint(run_dir: Path, node: Node) -> str | None:
    """Why ``node``'s checkpoint cannot be used, or None when it is intact (or the node has none)."""
    if node.checkpoint is None:
        return None
    root = (Path(run_dir) / "checkpoints").resolve()
    path = (Path(run_dir) / node.checkpoint).resolve()
    if root not in path.parents:
        return f"checkpoint {node.checkpoint!r} points outside {root}"
    try:
        digest = file_sha256(path)  # read in full only when the file changed since it was last hashed
    except FileNotFoundError:
        return f"checkpoint {node.checkpoint} is missing"
    except OSError as e:
        return f"checkpoint {node.checkpoint} is unreadable ({e.strerror})"
    if digest != node.checkpoint_sha256:
        return f"checkpoint {node.checkpoint} fails its sha256 (file {digest[:12]}…, recorded " \
               f"{(node.checkpoint_sha256 or '-')[:12]}…)"
    return None


def find_damage(run_dir: Path, nodes: Sequence[Node]) -> list[Damage]:
    """Every node whose recorded checkpoint is missing, unreadable or corrupt (reads files, writes nothing)."""
    out = []
    for n in nodes:
        why = check_checkpoint(run_dir, n)
        if why is not None:
            out.append(Damage(n.id, n.checkpoint, why))
    return out


def quarantine(store: TreeStore, node: Node, reason: str, in_flight: AbstractSet[int] = frozenset()) -> list[int]:
    """Drop ``node``'s checkpoint and fail its pending or interrupted children (but those ``in_flight``, which the
    coordinator fails when it finds their parent without a checkpoint); return the failed children."""
    store.drop_checkpoint(node.id, reason, kind=EventKind.CHECKPOINT_DAMAGED)
    failed = []
    for child in store.nodes(node.search_id):
        if (child.parent_id == node.id and child.status in (NodeStatus.PENDING, NodeStatus.INTERRUPTED)
                and child.id not in in_flight):
            store.finish_node(child.id, NodeStatus.FAILED, val_score=None, test_score=None, utility=None,
                              steps_trained=child.steps_trained,
                              error=f"its parent {node.id} cannot be trained from: {reason}")
            failed.append(child.id)
    return failed


@dataclass(frozen=True)
class RepairReport:
    damaged: tuple[Damage, ...]
    failed: tuple[int, ...]  # unfinished children that could only train from a damaged node

    def lines(self) -> list[str]:
        out = [f"node {d.node_id}: {d.reason}; it is no longer a parent" for d in self.damaged]
        if self.failed:
            out.append(f"nodes {list(self.failed)} failed: their parent's checkpoint is damaged")
        return out


def repair(store: TreeStore, run_dir: Path, search_id: int) -> RepairReport:
    """Quarantine every node of the search whose checkpoint is damaged (see the module docstring)."""
    damaged = find_damage(run_dir, store.nodes(search_id))
    failed: list[int] = []
    for d in damaged:
        failed += quarantine(store, store.node(d.node_id), d.reason)
    return RepairReport(tuple(damaged), tuple(failed))


def damage_lines(store: TreeStore, run_dir: Path, search_id: int) -> list[str]:
    """The run's damage for ``show`` and ``export``: checkpoints damaged now, and those repaired earlier."""
    now = [f"node {d.node_id}: {d.reason} (not repaired yet: run `searchmgr repair {run_dir}`)"
           for d in find_damage(run_dir, store.nodes(search_id))]
    before = [f"node {e['node_id']}: {e['message']} (repaired: no longer a parent)"
              for e in store.events(search_id) if e["kind"] == EventKind.CHECKPOINT_DAMAGED.value]
    return now + before
