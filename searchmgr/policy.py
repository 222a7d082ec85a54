"""What to train next: search policies over a snapshot of the tree.

A policy's :meth:`Policy.plan` reads an immutable list of nodes, the ids of nodes now
training (``in_flight``), the parents closed for good (``closed``) and the steps the
budget has left, and answers one of:

* :class:`Retry` — an unfinished node (pending, or interrupted by a dead process) that no
  executor holds: it is trained before anything new is planned;
* :class:`Grow` — a child of ``parent`` with a recipe the policy sets itself (the fixed
  path's base recipe; a baseline's constant recipe; a PBT copy);
* :class:`Expand` — ask the manager for a new child of ``parent`` (UCT with virtual-child
  expansion, :mod:`searchmgr.uct`; in-flight nodes are unobserved visits, WU-UCT);
* :class:`Wait` — nothing can be planned until an in-flight node finishes;
* :class:`Exhausted` — nothing can ever be planned again.

:func:`plan` is the UCT policy as a pure function; :class:`UCTPolicy` binds it to the
config. The baselines (grid, random, TPE, PBT) live in :mod:`searchmgr.baselines`.
Nothing here touches the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AbstractSet, Callable, ClassVar, Mapping, Sequence, Union

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.store import Node, NodeStatus


@dataclass(frozen=True)
class Retry:
    node: int


@dataclass(frozen=True)
class Grow:
    parent: int
    recipe: Mapping[str, float]
    source: str
    note: str
    tag: Any = None  # handed back to the policy with the new node (Policy.added)


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


Plan = Union[Retry, Grow, Expand, Wait, Exhausted]

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


def retry(nodes: Sequence[Node], in_flight: AbstractSet[int]) -> Retry | None:
    """The first unfinished node no executor holds (every policy trains those first)."""
    for n in nodes:
        if n.status in UNFINISHED and n.id not in in_flight:
            return Retry(n.id)
    return None


def plan(nodes: Sequence[Node], *, c: float, k_max: int, max_depth: int,
         in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset()) -> Plan:
    """The UCT policy: retry, then the fixed path to the horizon, then UCT (see the module docstring)."""
    unfinished = retry(nodes, in_flight)
    if unfinished is not None:
        return unfinished
    tip = T.fixed_path(nodes)[-1]
    if tip.depth < max_depth and tip.status is NodeStatus.DONE and tip.checkpoint is not None:
        return Grow(tip.id, tip.recipe, T.FIXED, "fixed baseline: hold the base recipe")
    sel = uct.select(view(nodes, in_flight=in_flight, closed=closed), c=c, k_max=k_max, max_depth=max_depth)
    if sel is not None:
        return Expand(sel.parent, sel)
    if in_flight:
        return Wait("every expandable node is full or training; waiting for a segment to finish")
    if tip.depth < max_depth:
        return Exhausted(f"the fixed path stopped at depth {tip.depth} (its node {tip.id} is {tip.status.value})")
    return Exhausted("tree exhausted (every node has k_max children or reached max_depth)")


class Policy(ABC):
    """Decides what the coordinator trains next; may keep state it can rebuild from the store."""

    name: ClassVar[str]

    @abstractmethod
    def plan(self, nodes: Sequence[Node], *, in_flight: AbstractSet[int], closed: AbstractSet[int],
             budget_left: int) -> Plan:
        """The next thing to train; ``budget_left`` counts steps not yet spent or committed."""

    def may_expand(self, node: Node, nodes: Sequence[Node], closed: AbstractSet[int]) -> bool:
        """Whether this policy may still select ``node`` as a parent (checkpoint retention asks)."""
        return node.status is NodeStatus.DONE and node.id not in closed

    def stopper(self, node: Node, configured: Callable[[], Any]) -> Any | None:
        """The early stopper for a node about to train (``configured()`` builds the run's), or None."""
        return configured()

    def resume(self, nodes: Sequence[Node], metrics: Callable[[int], list]) -> None:
        """Rebuild in-memory state from a stored tree (``metrics(node_id)`` gives its evaluations)."""

    def added(self, node: Node, tag: Any) -> None:
        """A node this policy asked for with :class:`Grow` was stored."""

    def told(self, node: Node) -> None:
        """A node finished (done, pruned or failed)."""


class UCTPolicy(Policy):
    """The tree search: the fixed path first, then UCT with virtual-child expansion; the stopper may prune
    every node but the fixed path's."""

    name = "uct"

    def __init__(self, *, c: float, k_max: int, max_depth: int):
        self.c, self.k_max, self.max_depth = c, k_max, max_depth

    def plan(self, nodes, *, in_flight, closed, budget_left):
        return plan(nodes, c=self.c, k_max=self.k_max, max_depth=self.max_depth, in_flight=in_flight, closed=closed)

    def may_expand(self, node, nodes, closed):
        return super().may_expand(node, nodes, closed) and node.depth < self.max_depth

    def stopper(self, node, configured):
        return None if node.source == T.FIXED else configured()


POLICIES = ("uct", "grid", "random", "tpe", "pbt")


def make_policy(config, task) -> Policy:
    """The policy ``config.policy.name`` names, for ``task``."""
    name = config.policy.name
    if name == "uct":
        return UCTPolicy(c=config.uct.c, k_max=config.uct.k_max, max_depth=config.max_depth)
    from searchmgr import baselines

    return baselines.make(name, config, task)
