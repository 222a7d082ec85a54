"""Which checkpoints to keep (``checkpoints.keep``), as a pure function of a snapshot of the tree.

``expandable`` (default) keeps every checkpoint the policy may still branch from
(:meth:`searchmgr.policies.Policy.may_expand`: for UCT a finished segment above the horizon
that is not closed; for chains and PBT only the current tips) plus the tips of the best and
fixed paths (the models a user exports) and the parents of unfinished nodes. Everything
else is deleted: with a large model and hundreds of nodes, full checkpoints of every
node are terabytes. ``all`` keeps everything.
"""

from __future__ import annotations

from typing import AbstractSet, Callable, Sequence

from searchmgr import tree as T
from searchmgr.objective import Objective
from searchmgr.store import Node


def doomed(nodes: Sequence[Node], *, keep: str, objective: Objective, max_depth: int,
           in_flight: AbstractSet[int], may_expand: Callable[[Node], bool], keep_best: int = 1) -> list[Node]:
    """The nodes whose checkpoint can be deleted now; the ``keep_best`` best leaves keep theirs (the
    schedules ``select.reevaluate`` evaluates afresh at the end)."""
    if keep == "all":
        return []
    index = T.by_id(nodes)
    needed = {index[i].parent_id for i in in_flight}
    needed |= {n.parent_id for n in nodes if not n.status.finished}
    needed |= {n.id for n in T.ranked_leaves(nodes, objective, max_depth)[:max(keep_best, 1)]}
    needed.add(T.fixed_path(nodes)[-1].id)
    return [n for n in nodes if n.checkpoint is not None and n.id not in needed and not may_expand(n)]
