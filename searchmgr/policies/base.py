"""The policy interface: what the coordinator trains next, over a snapshot of the tree.

The plan types a policy answers with, the :class:`Policy` contract, and two helpers
every policy uses (:func:`retry`, :func:`view`). Nothing here touches the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AbstractSet, Callable, ClassVar, Mapping, Sequence, Union

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.budget import UNFINISHED, Budget
from searchmgr.store import Node, NodeStatus


@dataclass(frozen=True)
class Retry:
    """Train this unfinished node (pending, or interrupted by a dead process) again."""

    node: int


@dataclass(frozen=True)
class Grow:
    """Train a child of ``parent`` with a recipe the policy set itself (fixed path, a baseline's trial, a copy)."""

    parent: int
    recipe: Mapping[str, float]
    source: str
    note: str
    tag: Any = None  # handed back to the policy with the new node (Policy.added)


@dataclass(frozen=True)
class Expand:
    """Ask the manager for a new child of ``parent`` (UCT chose it; ``selection`` says why)."""

    parent: int
    selection: uct.Selection


@dataclass(frozen=True)
class Wait:
    """Nothing can be planned until an in-flight node finishes."""

    reason: str


@dataclass(frozen=True)
class Exhausted:
    """Nothing can ever be planned again."""

    reason: str


Plan = Union[Retry, Grow, Expand, Wait, Exhausted]



class Policy(ABC):
    """Decides what the coordinator trains next.

    Contract (what the coordinator relies on, and what every implementation must keep):

    * :meth:`plan` is a function of its arguments and of the policy's own state: an immutable
      snapshot of the stored nodes (``nodes``, in id order), the ids of nodes an executor holds
      now (``in_flight``), the parents closed for good (``closed``) and the run's step budget
      (``budget``, the :class:`~searchmgr.budget.Budget` the coordinator counts with: ``budget.left``
      is neither spent nor committed to in-flight nodes). It never touches the store and never blocks.
    * It answers one of :class:`Retry`, :class:`Grow`, :class:`Expand`, :class:`Wait`,
      :class:`Exhausted`. Unfinished nodes no executor holds come first (:func:`retry`).
      :class:`Exhausted` is final for this budget: answer :class:`Wait` while an in-flight node
      may still open room.
    * A policy may keep state, but only state it can rebuild from the store: :meth:`resume` is
      called once with the stored tree before the first plan of a resumed run; :meth:`added` and
      :meth:`told` keep it current as nodes are stored and finish.
    * :meth:`may_expand` says whether a finished node may still become a parent (checkpoint
      retention deletes the rest); :meth:`stopper` picks the early stopper for a node about to train.
    """

    name: ClassVar[str]

    @abstractmethod
    def plan(self, nodes: Sequence[Node], *, in_flight: AbstractSet[int], closed: AbstractSet[int],
             budget: Budget) -> Plan:
        """The next thing to train; ``budget.left`` counts steps not yet spent or committed."""

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
                     utility=n.utility, visits=n.visits, value_sum=n.value_sum, pending=pending.get(n.id, 0),
                     passable=n.status.expandable and n.checkpoint is None and n.id not in closed)
        for n in nodes])


def retry(nodes: Sequence[Node], in_flight: AbstractSet[int]) -> Retry | None:
    """The first unfinished node no executor holds (every policy trains those first)."""
    for n in nodes:
        if n.status in UNFINISHED and n.id not in in_flight:
            return Retry(n.id)
    return None
