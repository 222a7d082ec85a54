"""The tree search as a policy: the fixed path, then UCT with virtual-child expansion, then its rules.

:func:`plan` is the base answer, a pure function: retry an unfinished node, grow the fixed
path to the horizon, else let UCT (:mod:`searchmgr.uct`; in-flight nodes count as unobserved
visits, WU-UCT) choose a parent to expand, else wait or stop. :class:`UCTPolicy` binds it to
the config and passes its answer through a short, ordered list of :class:`Rule` pieces that
the config switches on one by one (:func:`rules`):

===============  =====================  ==========================================================
rule             switched on by         what it changes
===============  =====================  ==========================================================
FirstStarts      uct.start=anywhere     Expand anywhere -> Expand of the root, until ``uct.starts``
                                        start points have been trained
Widen            uct.widen > 0          Exhausted -> the plan again with no k_max, while the budget
                                        left pays for one segment
Finish           uct.finish             Expand/Wait/Exhausted -> Grow the hold child of a node that
                                        leads the best complete schedule, when the budget left
                                        just pays for holding it to the horizon (:func:`finish`)
HoldFirst        uct.hold_first         Expand of a non-root parent -> Grow the parent's own recipe,
                                        when no child of it holds that recipe yet (a fixed node's
                                        hold child is the fixed path's next segment)
FixedStart       uct.fixed=start        Expand of the root -> Grow the fixed recipe's first segment,
                                        while the root has none (the base answer then never grows
                                        the fixed path itself)
StartDesign      uct.start=anywhere     Expand of the root -> Grow the next point of a space-filling
                                        design over the whole surface
===============  =====================  ==========================================================

Each rule reads the plan so far and the snapshot and returns that plan or its replacement; a
rule never changes a plan type it does not name. Nothing here touches the store.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import AbstractSet, Any, Mapping, Sequence

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.budget import Budget
from searchmgr.policies.base import Exhausted, Expand, Grow, Plan, Policy, Wait, retry, view
from searchmgr.store import Node, NodeStatus

START = "start"  # a root child placed by the start design (uct.start=anywhere)
HOLD = "hold"  # a child that continues its parent's recipe unchanged (uct.hold_first)
FINISH = "finish"  # a hold child that finishes a leading schedule (uct.finish)
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
UNBOUNDED = 10**9  # k_max when widening re-plans


def plan(nodes: Sequence[Node], *, c: float, k_max: int, max_depth: int,
         in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset(), widen: float = 0.0,
         q_rule: str = "mean", mean_prior: bool = False, fixed_first: bool = True) -> Plan:
    """The base answer: retry, then the fixed path to the horizon (``fixed_first``), then UCT, then wait or
    exhausted."""
    unfinished = retry(nodes, in_flight)
    if unfinished is not None:
        return unfinished
    tip = T.fixed_path(nodes)[-1]
    if fixed_first and tip.depth < max_depth and tip.status is NodeStatus.DONE and tip.checkpoint is not None:
        return Grow(tip.id, tip.recipe, T.FIXED, "fixed baseline: hold the base recipe")
    sel = uct.select(view(nodes, in_flight=in_flight, closed=closed), c=c, k_max=k_max, max_depth=max_depth,
                     widen=widen, q_rule=q_rule, mean_prior=mean_prior)
    if sel is not None:
        return Expand(sel.parent, sel)
    if in_flight:
        return Wait("every expandable node is full or training; waiting for a segment to finish")
    if fixed_first and tip.depth < max_depth:
        return Exhausted(f"the fixed path stopped at depth {tip.depth} (its node {tip.id} is {tip.status.value})")
    return Exhausted("tree exhausted (every node has k_max children or reached max_depth)")


def finish(nodes: Sequence[Node], *, max_depth: int, segment_steps: int, budget_left: int,
           in_flight: AbstractSet[int] = frozenset(), closed: AbstractSet[int] = frozenset()) -> Grow | None:
    """The endgame: a schedule that leads the best complete one at its depth is finished before the budget runs out.

    When the steps left pay for holding such a node's recipe to the horizon but not for one segment more
    besides, grow its hold child (the node with the largest lead over the best complete schedule's segment at
    its depth; one without a child of the same recipe, not closed, not training). A search that spreads its
    budget over many promising starts would otherwise end with none of them complete. While no schedule is
    complete, the best node that the steps left can still carry to the horizon is finished."""
    done = [n for n in nodes if n.status is NodeStatus.DONE and n.utility is not None and n.depth > 0]
    complete = [n for n in done if n.depth == max_depth]
    index = T.by_id(nodes)
    held = {c.parent_id for c in nodes if c.parent_id is not None and c.recipe == index[c.parent_id].recipe}
    open_ = [n for n in done
             if n.depth < max_depth and n.checkpoint is not None and n.id not in closed and n.id not in held
             and n.id not in in_flight and 0 <= budget_left - (max_depth - n.depth) * segment_steps < segment_steps]
    if not complete:  # nothing reached the horizon yet: finish the best schedule that still can
        if not open_:
            return None
        n = max(open_, key=lambda n: (n.utility, -n.id))
        return Grow(n.id, n.recipe, FINISH, f"finish: no schedule is complete and the {budget_left} steps left just "
                    f"pay for holding node {n.id}'s recipe (the best that can still finish) to the horizon")
    best = max(complete, key=lambda n: (n.utility, -n.id))
    on_best = {n.depth: n for n in T.path_to(nodes, best.id)}
    leaders = [n for n in open_ if n.utility > on_best[n.depth].utility]
    if not leaders:
        return None
    n = max(leaders, key=lambda n: (n.utility - on_best[n.depth].utility, -n.id))
    return Grow(n.id, n.recipe, FINISH, f"finish: node {n.id} leads the best complete schedule at depth {n.depth}; "
                f"the {budget_left} steps left pay for holding its recipe to the horizon")


@dataclass(frozen=True)
class Snapshot:
    """What one planning turn sees (the arguments of :meth:`Policy.plan`)."""

    nodes: Sequence[Node]
    in_flight: AbstractSet[int] = frozenset()
    closed: AbstractSet[int] = frozenset()
    budget: Budget = Budget.left_of(0)

    @property
    def root(self) -> Node:
        return T.root(self.nodes)


@dataclass(frozen=True)
class Select:
    """The base answer (:func:`plan`) with the run's UCT settings bound."""

    c: float
    k_max: int
    max_depth: int
    widen: float = 0.0
    q_rule: str = "mean"
    mean_prior: bool = False
    fixed_first: bool = True

    def __call__(self, snap: Snapshot, *, k_max: int | None = None) -> Plan:
        return plan(snap.nodes, c=self.c, k_max=self.k_max if k_max is None else k_max, max_depth=self.max_depth,
                    in_flight=snap.in_flight, closed=snap.closed, widen=self.widen, q_rule=self.q_rule,
                    mean_prior=self.mean_prior, fixed_first=self.fixed_first)


class Rule(ABC):
    """One rule of the UCT policy: given the plan so far, return it or what replaces it."""

    @abstractmethod
    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        """The plan after this rule (``step`` itself when the rule does not apply)."""


@dataclass(frozen=True)
class FirstStarts(Rule):
    """Expand anywhere -> Expand of the root while fewer than ``starts`` start points exist, so the first
    starts are all trained before UCT chooses among them."""

    starts: int
    counted: tuple[str, ...] = (START,)  # the root children that count as starts (the fixed one too, fixed=start)

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        if not isinstance(step, Expand):
            return step
        root = snap.root
        if sum(c.source in self.counted for c in T.children(snap.nodes, root.id)) < self.starts:
            return Expand(root.id, step.selection)
        return step


@dataclass(frozen=True)
class Widen(Rule):
    """Exhausted -> the base answer again with no k_max, while the budget left pays for a segment: never stop
    with budget left while a node below the horizon can still grow (progressive widening)."""

    select: Select
    segment_steps: int

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        if isinstance(step, Exhausted) and snap.budget.left >= self.segment_steps:
            return self.select(snap, k_max=UNBOUNDED)
        return step


@dataclass(frozen=True)
class Finish(Rule):
    """Expand, Wait or Exhausted -> Grow the hold child of a leading schedule when the budget left just pays
    for holding it to the horizon (:func:`finish`)."""

    max_depth: int
    segment_steps: int

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        if not isinstance(step, (Expand, Wait, Exhausted)):
            return step
        end = finish(snap.nodes, max_depth=self.max_depth, segment_steps=self.segment_steps,
                     budget_left=snap.budget.left, in_flight=snap.in_flight, closed=snap.closed)
        return step if end is None else end


class HoldFirst(Rule):
    """Expand of a non-root parent -> Grow the parent's own recipe, when no child of it holds that recipe yet:
    a schedule's first continuation is "change nothing", and the manager's changes compete with it."""

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        if not isinstance(step, Expand) or step.parent == snap.root.id:
            return step
        parent = T.by_id(snap.nodes)[step.parent]
        if any(c.recipe == parent.recipe for c in T.children(snap.nodes, parent.id)):
            return step
        if parent.source == T.FIXED:
            return Grow(parent.id, parent.recipe, T.FIXED, "fixed recipe: hold the base recipe")
        return Grow(parent.id, parent.recipe, HOLD, "hold first: continue the parent's recipe unchanged")


class FixedStart(Rule):
    """Expand of the root -> Grow the fixed recipe's first segment while the root has none: the fixed recipe is
    the first start point, and its schedule then grows (and may be pruned) like any other."""

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        root = snap.root
        if not isinstance(step, Expand) or step.parent != root.id:
            return step
        if any(c.source == T.FIXED for c in T.children(snap.nodes, root.id)):
            return step
        return Grow(root.id, root.recipe, T.FIXED, "fixed recipe: the first start point, grown like any schedule")


@dataclass(frozen=True)
class StartDesign(Rule):
    """Expand of the root -> Grow the next point of a space-filling design over the whole surface (a Halton
    sequence with a seeded shift), so every constant-recipe region is reachable from step 0; deeper
    children stay bounded steps chosen by the manager."""

    surface: Any
    seed: int

    def __call__(self, step: Plan, snap: Snapshot) -> Plan:
        root = snap.root
        if not isinstance(step, Expand) or step.parent != root.id:
            return step
        kids = T.children(snap.nodes, root.id)
        i = sum(n.source == START for n in kids)
        return Grow(root.id, self.point(i, [n.recipe for n in kids]), START,
                    f"start anywhere: point {i + 1} of a space-filling design over the surface")

    def point(self, i: int, taken: Sequence[Mapping[str, float]]) -> dict:
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


def _halton(i: int, base: int) -> float:
    f, r = 1.0, 0.0
    while i > 0:
        f /= base
        r += f * (i % base)
        i //= base
    return r


def rules(select: Select, *, start: str, starts: int, surface: Any, seed: int, segment_steps: int,
          hold_first: bool, finish: bool) -> tuple[Rule, ...]:
    """The rules the settings switch on, in the order they apply (see the module docstring)."""
    anywhere = start == "anywhere"
    chosen: list[Rule | None] = [
        FirstStarts(starts, (START,) if select.fixed_first else (START, T.FIXED)) if anywhere else None,
        Widen(select, segment_steps) if select.widen > 0 else None,
        Finish(select.max_depth, segment_steps) if finish else None,
        HoldFirst() if hold_first else None,
        None if select.fixed_first else FixedStart(),
        StartDesign(surface, seed) if anywhere else None,
    ]
    return tuple(r for r in chosen if r is not None)


class UCTPolicy(Policy):
    """The tree search: the base answer (:func:`plan`) passed through the configured :class:`Rule` pieces.

    The stopper may prune every node but the fixed path's and the finish rule's (and, with
    ``stopper.scope=final``, only segments ending at the horizon).
    """

    name = "uct"

    def __init__(self, *, c: float, k_max: int, max_depth: int, widen: float = 0.0, q_rule: str = "mean",
                 start: str = "bounded", surface=None, seed: int = 0, segment_steps: int = 0,
                 stop_scope: str = "all", hold_first: bool = False, starts: int = 0, finish: bool = False,
                 fixed: str = "first"):
        self.max_depth, self.stop_scope = max_depth, stop_scope
        self.select = Select(c=c, k_max=k_max, max_depth=max_depth, widen=widen, q_rule=q_rule,
                             mean_prior=start == "anywhere", fixed_first=fixed == "first")
        self.rules = rules(self.select, start=start, starts=starts, surface=surface, seed=seed,
                           segment_steps=segment_steps, hold_first=hold_first, finish=finish)

    def plan(self, nodes, *, in_flight, closed, budget):
        snap = Snapshot(nodes, in_flight, closed, budget)
        step = self.select(snap)
        for rule in self.rules:
            step = rule(step, snap)
        return step

    def may_expand(self, node, nodes, closed):
        return super().may_expand(node, nodes, closed) and node.depth < self.max_depth

    def stopper(self, node, configured):
        exempt = (T.FIXED, FINISH) if self.select.fixed_first else (FINISH,)
        if node.source in exempt or (self.stop_scope == "final" and node.depth < self.max_depth):
            return None
        return configured()


def build(config, task) -> UCTPolicy:
    """The tree search with the run's ``uct`` settings."""
    u = config.uct
    return UCTPolicy(c=u.c, k_max=u.k_max, max_depth=config.max_depth, widen=u.widen, q_rule=u.q,
                     start=u.start, surface=task.surface, seed=config.seed, segment_steps=config.segment_steps,
                     stop_scope=config.stopper.scope, hold_first=u.hold_first,
                     starts=u.starts if u.starts is not None else config.budget.steps // config.horizon,
                     finish=u.finish, fixed=u.fixed)
