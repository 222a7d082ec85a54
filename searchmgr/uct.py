"""UCT with virtual-child expansion (LLMZero, arXiv 2606.18388), as pure functions.

At a parent ``p`` with ``k`` children::

    UCT(c)       = Q(c) + C * sqrt(ln N(p) / N(c))
    UCT(virtual) = Q_prior + C * sqrt(ln N(p) / N_fair),   Q_prior = f(s_p),  N_fair = N(p) / (k + 1)

where ``Q(c)`` is the mean utility backed up through ``c`` and ``f(s_p)`` is the
parent's own score, both normalised to [0, 1] over every score the tree has
observed. ``p`` is expanded when the virtual child wins and ``k < k_max``; otherwise
selection descends into the best child. Nodes are read from an immutable
:class:`TreeView`; nothing here touches the store.

With several workers, nodes still training are *unobserved* visits (WU-UCT, "Watch
the Unobserved", ICLR 2020): ``N`` in the exploration terms is completed plus pending
visits, ``O(n)`` being the number of in-flight nodes at or below ``n``, while ``Q``
averages completed visits only. With nothing in flight this is plain UCT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

UNVISITED = 0


@dataclass(frozen=True)
class NodeView:
    """What UCT needs of a node. ``utility`` is the oriented score (higher is better)."""

    id: int
    parent: int | None
    depth: int
    expandable: bool  # trained to its end with a checkpoint (status done)
    utility: float | None
    visits: int
    value_sum: float
    pending: int = 0  # in-flight nodes at or below this one (unobserved visits, WU-UCT)
    passable: bool = False  # not expandable itself (its checkpoint is damaged), but its subtree may still be

    @property
    def n(self) -> int:
        """Visits for the exploration term: completed plus pending."""
        return self.visits + self.pending


@dataclass(frozen=True)
class TreeView:
    nodes: Mapping[int, NodeView]
    children: Mapping[int, tuple[int, ...]]
    root: int

    @classmethod
    def build(cls, nodes: list[NodeView]) -> "TreeView":
        by_id = {n.id: n for n in nodes}
        kids: dict[int, list[int]] = {n.id: [] for n in nodes}
        root = None
        for n in sorted(nodes, key=lambda n: n.id):
            if n.parent is None:
                root = n.id
            else:
                kids[n.parent].append(n.id)
        if root is None:
            raise ValueError("tree has no root")
        return cls(by_id, {k: tuple(v) for k, v in kids.items()}, root)


@dataclass(frozen=True)
class Normaliser:
    """Maps utilities linearly onto [0, 1] over the range the tree has observed."""

    low: float
    high: float

    @classmethod
    def of(cls, tree: TreeView) -> "Normaliser":
        seen = [n.utility for n in tree.nodes.values() if n.utility is not None and math.isfinite(n.utility)]
        if not seen:
            return cls(0.0, 1.0)
        return cls(min(seen), max(seen))

    def __call__(self, utility: float | None) -> float:
        if utility is None or not math.isfinite(utility):
            return 0.0
        if self.high - self.low < 1e-12:
            return 0.5
        return min(max((utility - self.low) / (self.high - self.low), 0.0), 1.0)


def uct_score(q: float, parent_visits: float, child_visits: float, *, c: float) -> float:
    """UCT(c) = Q(c) + C * sqrt(ln N(p) / N(c)); an unvisited child scores +inf."""
    if child_visits <= UNVISITED:
        return math.inf
    return q + c * math.sqrt(math.log(max(parent_visits, 1.0)) / child_visits)


def virtual_score(q_prior: float, parent_visits: float, n_children: int, *, c: float) -> float:
    """The virtual new child: Q_prior + C * sqrt(ln N(p) / N_fair), N_fair = N(p) / (k + 1)."""
    n_fair = max(parent_visits, 1.0) / (n_children + 1)
    return uct_score(q_prior, parent_visits, n_fair, c=c)


def allowed_children(node: NodeView, *, k_max: int, widen: float) -> int:
    """Progressive widening: k_max, or ``widen * sqrt(N)`` children once a node has been visited enough."""
    return k_max if widen <= 0 else max(k_max, int(widen * math.sqrt(node.n)))


def has_room(tree: TreeView, node_id: int, *, k_max: int, max_depth: int, widen: float = 0.0) -> bool:
    """Whether selection can still expand ``node_id`` or something below it."""
    n = tree.nodes[node_id]
    if not (n.expandable or n.passable) or n.depth >= max_depth:
        return False
    kids = tree.children[node_id]
    if n.expandable and len(kids) < allowed_children(n, k_max=k_max, widen=widen):
        return True
    return any(has_room(tree, k, k_max=k_max, max_depth=max_depth, widen=widen) for k in kids)


def best_below(tree: TreeView) -> dict[int, float]:
    """The best utility observed at or below each node (for the ``max`` Q rule)."""
    out: dict[int, float] = {}

    def visit(i: int) -> float:
        u = tree.nodes[i].utility
        best = u if u is not None and math.isfinite(u) else -math.inf
        for k in tree.children[i]:
            best = max(best, visit(k))
        out[i] = best
        return best

    visit(tree.root)
    return out


@dataclass(frozen=True)
class Selection:
    """Expand ``parent``; ``path`` is the root-to-parent descent and ``scores`` its last comparison."""

    parent: int
    path: tuple[int, ...]
    scores: Mapping[str, float]


def select(tree: TreeView, *, c: float, k_max: int, max_depth: int, widen: float = 0.0, q_rule: str = "mean",
           mean_prior: bool = False) -> Selection | None:
    """Descend from the root to the node to expand next, or ``None`` when the tree is exhausted.

    ``q_rule="max"`` scores a child by the best utility in its subtree instead of the mean
    (one success is not averaged away among failures); ``mean_prior`` gives an unscored parent
    (the root) the normalised mean of its subtree as Q_prior instead of 0, so the root can branch.
    """
    if not has_room(tree, tree.root, k_max=k_max, max_depth=max_depth, widen=widen):
        return None
    norm = Normaliser.of(tree)
    best_u = best_below(tree) if q_rule == "max" else {}
    node = tree.root
    path = [node]
    while True:
        p = tree.nodes[node]
        kids = tree.children[node]
        open_kids = [k for k in kids if has_room(tree, k, k_max=k_max, max_depth=max_depth, widen=widen)]
        can_expand = p.expandable and len(kids) < allowed_children(p, k_max=k_max, widen=widen)
        q_prior = norm(p.utility)
        if p.utility is None and mean_prior and p.visits > UNVISITED:
            q_prior = norm(p.value_sum / p.visits)
        v = virtual_score(q_prior, p.n, len(kids), c=c) if can_expand else -math.inf
        best, best_score = None, -math.inf
        for k in open_kids:
            ch = tree.nodes[k]
            if q_rule == "max":
                q = norm(best_u[k]) if math.isfinite(best_u[k]) else 0.0
            else:
                q = norm(ch.value_sum / ch.visits) if ch.visits > UNVISITED else 0.0
            s = uct_score(q, p.n, ch.n, c=c)
            if s > best_score:
                best, best_score = k, s
        if can_expand and (best is None or v > best_score):
            return Selection(node, tuple(path), {"virtual": v, "best_child": best_score})
        node = best  # has_room(node) guarantees an open child when p cannot expand
        path.append(node)


def backup(tree: TreeView, leaf: int, utility: float) -> dict[int, tuple[int, float]]:
    """New ``(visits, value_sum)`` for ``leaf`` and each ancestor after observing ``utility``."""
    out: dict[int, tuple[int, float]] = {}
    node: int | None = leaf
    while node is not None:
        n = tree.nodes[node]
        out[node] = (n.visits + 1, n.value_sum + utility)
        node = n.parent
    return out
