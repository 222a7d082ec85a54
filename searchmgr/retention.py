"""Which checkpoints to keep (``checkpoints.keep``), as a pure function of a snapshot of the tree.

``expandable`` (default) keeps every checkpoint a policy may still branch from — a finished
segment above the horizon whose parent slot is not closed — plus the tips of the best and
fixed paths (the models a user exports) and the parents of unfinished nodes. Everything
else is deleted: with a large model and hundreds of nodes, full checkpoints of every
node are terabytes. ``all`` keeps everything.
"""

from __future__ import annotations

from typing import AbstractSet, Sequence

from searchmgr import tree as T
from searchmgr.objective import Objective
from searchmgr.store import Node, NodeStatus


def may_expand(node: Node, *, max_depth: int, closed: AbstractSet[int]) -> bool:
    """Whether any policy may still select ``node`` as a parent."""
    return node.status is NodeStatus.DONE and node.depth < max_depth and node.id not in closed


def doomed(nodes: Sequence[Node], *, keep: str, objective: Objective, max_depth: int,
           closed: AbstractSet[int], in_flight: AbstractSet[int]) -> list[Node]:
    """The nodes whose checkpoint can be deleted now."""
    if keep == "all":
        return []
    index = T.by_id(nodes)
    needed = {index[i].parent_id for i in in_flight}
    needed |= {n.parent_id for n in nodes if not n.status.finished}
    best = T.best_leaf(nodes, objective, max_depth)
    if best is not None:
        needed.add(best.id)
    needed.add(T.fixed_path(nodes)[-1].id)
    return [n for n in nodes if n.checkpoint is not None and n.id not in needed
            and not may_expand(n, max_depth=max_depth, closed=closed)]
