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

import random
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
         in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset(), widen: float = 0.0,
         q_rule: str = "mean", mean_prior: bool = False) -> Plan:
    """The UCT policy: retry, then the fixed path to the horizon, then UCT (see the module docstring)."""
    unfinished = retry(nodes, in_flight)
    if unfinished is not None:
        return unfinished
    tip = T.fixed_path(nodes)[-1]
    if tip.depth < max_depth and tip.status is NodeStatus.DONE and tip.checkpoint is not None:
        return Grow(tip.id, tip.recipe, T.FIXED, "fixed baseline: hold the base recipe")
    sel = uct.select(view(nodes, in_flight=in_flight, closed=closed), c=c, k_max=k_max, max_depth=max_depth,
                     widen=widen, q_rule=q_rule, mean_prior=mean_prior)
    if sel is not None:
        return Expand(sel.parent, sel)
    if in_flight:
        return Wait("every expandable node is full or training; waiting for a segment to finish")
    if tip.depth < max_depth:
        return Exhausted(f"the fixed path stopped at depth {tip.depth} (its node {tip.id} is {tip.status.value})")
    return Exhausted("tree exhausted (every node has k_max children or reached max_depth)")


def finish(nodes: Sequence[Node], *, max_depth: int, segment_steps: int, budget_left: int,
           in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset()) -> Grow | None:
    """The endgame: a schedule that leads the best complete one at its depth is finished before the budget runs out.

    When the steps left pay for holding such a node's recipe to the horizon but not for one segment more
    besides, grow its hold child (the node with the largest lead over the best complete schedule's segment at
    its depth; one without a child of the same recipe, not closed, not training). A search that spreads its
    budget over many promising starts would otherwise end with none of them complete."""
    done = [n for n in nodes if n.status is NodeStatus.DONE and n.utility is not None and n.depth > 0]
    complete = [n for n in done if n.depth == max_depth]
    if not complete:
        return None
    best = max(complete, key=lambda n: (n.utility, -n.id))
    on_best = {n.depth: n for n in T.path_to(nodes, best.id)}
    index = T.by_id(nodes)
    held = {c.parent_id for c in nodes if c.parent_id is not None and c.recipe == index[c.parent_id].recipe}
    leaders = [n for n in done
               if n.depth < max_depth and n.checkpoint is not None and n.id not in closed and n.id not in held
               and n.id not in in_flight and n.utility > on_best[n.depth].utility
               and 0 <= budget_left - (max_depth - n.depth) * segment_steps < segment_steps]
    if not leaders:
        return None
    n = max(leaders, key=lambda n: (n.utility - on_best[n.depth].utility, -n.id))
    return Grow(n.id, n.recipe, FINISH, f"finish: node {n.id} leads the best complete schedule at depth {n.depth}; "
                f"the {budget_left} steps left pay for holding its recipe to the horizon")


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
    every node but the fixed path's (and, with ``stopper.scope=final``, only segments ending at the horizon).

    ``start="anywhere"``: when UCT expands the root, the new child's recipe is the next point of a
    space-filling design over the whole surface (a Halton sequence with a seeded shift), so every
    constant recipe region is reachable from step 0; deeper children stay bounded steps chosen by
    the manager. ``widen > 0``: progressive widening, and when every node is full while budget is
    left, any node below the horizon may still grow.
    """

    name = "uct"

    def __init__(self, *, c: float, k_max: int, max_depth: int, widen: float = 0.0, q_rule: str = "mean",
                 start: str = "bounded", surface=None, seed: int = 0, segment_steps: int = 0,
                 stop_scope: str = "all", hold_first: bool = False, starts: int = 0, finish: bool = False):
        self.c, self.k_max, self.max_depth = c, k_max, max_depth
        self.widen, self.q_rule, self.start = widen, q_rule, start
        self.surface, self.seed, self.segment_steps, self.stop_scope = surface, seed, segment_steps, stop_scope
        self.hold_first, self.starts, self.finish = hold_first, starts, finish

    def plan(self, nodes, *, in_flight, closed, budget_left):
        kw = dict(c=self.c, max_depth=self.max_depth, in_flight=in_flight, closed=closed, widen=self.widen,
                  q_rule=self.q_rule, mean_prior=self.start == "anywhere")
        step = plan(nodes, k_max=self.k_max, **kw)
        root = T.root(nodes)
        if self.start == "anywhere" and isinstance(step, Expand):
            n_starts = sum(c.source == START for c in T.children(nodes, root.id))
            if n_starts < self.starts:  # the first starts are trained before UCT chooses among them
                step = Expand(root.id, step.selection)
        if isinstance(step, Exhausted) and self.widen > 0 and budget_left >= self.segment_steps:
            step = plan(nodes, k_max=10**9, **kw)  # never stop with budget left while a node can still grow
        if self.finish and isinstance(step, (Expand, Wait, Exhausted)):
            end = finish(nodes, max_depth=self.max_depth, segment_steps=self.segment_steps, budget_left=budget_left,
                         in_flight=in_flight, closed=closed)
            if end is not None:
                return end
        if isinstance(step, Expand) and step.parent != root.id and self.hold_first:
            parent = T.by_id(nodes)[step.parent]
            if not any(c.recipe == parent.recipe for c in T.children(nodes, parent.id)):
                return Grow(parent.id, parent.recipe, HOLD, "hold first: continue the parent's recipe unchanged")
        if isinstance(step, Expand) and step.parent == root.id and self.start == "anywhere":
            starts = [n for n in T.children(nodes, root.id) if n.source == START]
            return Grow(root.id, self.start_point(len(starts), [n.recipe for n in T.children(nodes, root.id)]),
                        START, f"start anywhere: point {len(starts) + 1} of a space-filling design over the surface")
        return step

    def start_point(self, i: int, taken: Sequence[Mapping[str, float]]) -> dict:
        """The ``i``-th point of a shifted Halton sequence over the knobs' own scales (distinct from ``taken``)."""
        from searchmgr.surface import RecipeError, same_recipe

        shift = random.Random(f"start-{self.seed}")
        offsets = [shift.random() for _ in self.surface.knobs]
        for j in range(i, i + 1000):
            recipe = {k.name: k.at((_halton(j + 1, PRIMES[n % len(PRIMES)]) + offsets[n]) % 1.0)
                      for n, k in enumerate(self.surface.knobs)}
            try:
                recipe = self.surface.check(recipe)
            except RecipeError:
                continue
            if not any(same_recipe(recipe, t) for t in taken):
                return recipe
        raise RuntimeError("no distinct start point satisfies the task's constraint")

    def may_expand(self, node, nodes, closed):
        return super().may_expand(node, nodes, closed) and node.depth < self.max_depth

    def stopper(self, node, configured):
        if node.source in (T.FIXED, FINISH) or (self.stop_scope == "final" and node.depth < self.max_depth):
            return None
        return configured()


START = "start"
HOLD = "hold"
FINISH = "finish"
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _halton(i: int, base: int) -> float:
    f, r = 1.0, 0.0
    while i > 0:
        f /= base
        r += f * (i % base)
        i //= base
    return r


POLICIES = ("uct", "grid", "random", "tpe", "pbt")


def make_policy(config, task) -> Policy:
    """The policy ``config.policy.name`` names, for ``task``."""
    name = config.policy.name
    if name == "uct":
        u = config.uct
        return UCTPolicy(c=u.c, k_max=u.k_max, max_depth=config.max_depth, widen=u.widen, q_rule=u.q,
                         start=u.start, surface=task.surface, seed=config.seed, segment_steps=config.segment_steps,
                         stop_scope=config.stopper.scope, hold_first=u.hold_first,
                         starts=u.starts if u.starts is not None else config.budget.steps // config.horizon,
                         finish=u.finish)
    from searchmgr import baselines

    return baselines.make(name, config, task)
