"""What to train next: the search policy as a pure function of a snapshot of the tree.

:func:`plan` reads an immutable list of nodes, the ids of nodes now training (``in_flight``)
and the parents closed for good (``closed``), and answers one of:

* :class:`Retry` — an unfinished node (pending, or interrupted by a dead process) that no
  executor holds: it is trained before anything new is planned;
* :class:`GrowFixed` — the fixed path's next segment (the base recipe held), until the
  fixed baseline reaches the horizon;
* :class:`Expand` — ask the manager for a new child of ``parent`` (UCT with virtual-child
  expansion, :mod:`searchmgr.uct`; in-flight nodes are unobserved visits, WU-UCT);
* :class:`Wait` — nothing can be planned until an in-flight node finishes;
* :class:`Exhausted` — nothing can ever be planned again.

Budgets are the coordinator's business; nothing here touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Sequence, Union

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.store import Node, NodeStatus


@dataclass(frozen=True)
class Retry:
    node: int


@dataclass(frozen=True)
class GrowFixed:
    parent: int


@dataclass(frozen=True)
class Expand:
    parent: int
    selection: uct.Selection


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class Exhausted:
    reason: str


Plan = Union[Retry, GrowFixed, Expand, Wait, Exhausted]

UNFINISHED = (NodeStatus.PENDING, NodeStatus.INTERRUPTED)


def view(nodes: Sequence[Node], *, in_flight: AbstractSet[int] = frozenset(),
         closed: AbstractSet[int] = frozenset()) -> uct.TreeView:
    """The UCT view of a snapshot: a node is expandable when it finished with a checkpoint and is not
    closed; ``pending`` counts the in-flight nodes at or below each node."""
    index = T.by_id(nodes)
    pending: dict[int, int] = {}
    for nid in in_flight:
        node: int | None = nid
        while node is not None:
            pending[node] = pending.get(node, 0) + 1
            node = index[node].parent_id
    return uct.TreeView.build([
        uct.NodeView(id=n.id, parent=n.parent_id, depth=n.depth,
                     expandable=n.status.expandable and n.checkpoint is not None and n.id not in closed,
                     utility=n.utility, visits=n.visits, value_sum=n.value_sum, pending=pending.get(n.id, 0))
        for n in nodes])


def plan(nodes: Sequence[Node], *, c: float, k_max: int, max_depth: int,
         in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset()) -> Plan:
    """The next thing to train (see the module docstring for the order of the answers)."""
    for n in nodes:
        if n.status in UNFINISHED and n.id not in in_flight:
            return Retry(n.id)
    tip = T.fixed_path(nodes)[-1]
    if tip.depth < max_depth and tip.status is NodeStatus.DONE and tip.checkpoint is not None:
        return GrowFixed(tip.id)
    sel = uct.select(view(nodes, in_flight=in_flight, closed=closed), c=c, k_max=k_max, max_depth=max_depth)
    if sel is not None:
        return Expand(sel.parent, sel)
    if in_flight:
        return Wait("every expandable node is full or training; waiting for a segment to finish")
    if tip.depth < max_depth:
        return Exhausted(f"the fixed path stopped at depth {tip.depth} (its node {tip.id} is {tip.status.value})")
    return Exhausted("tree exhausted (every node has k_max children or reached max_depth)")
