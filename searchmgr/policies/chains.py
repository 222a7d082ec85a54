"""Constant-recipe chains from the root: the shared shape of the ``grid``, ``random`` and ``tpe`` baselines.

Each trial is a *chain*: the same recipe for every segment up to the horizon, so its best
schedule can be shown, exported and replayed like the tree's. Unfinished chains are
continued first; a new trial starts only when the budget left can pay for its whole
horizon after the segments that chains already started still owe (:class:`searchmgr.budget.Budget`),
so several workers never start more chains than the budget can finish. Every chain policy rebuilds its state from the stored nodes, so ``--resume``
continues it.
"""

from __future__ import annotations

import random
from typing import AbstractSet, Any, Mapping, Sequence

from searchmgr import tree as T
from searchmgr.budget import UNFINISHED, Budget
from searchmgr.config import ConfigError
from searchmgr.policies.base import Exhausted, Grow, Plan, Policy, Wait, retry
from searchmgr.store import Node, NodeStatus
from searchmgr.surface import ActionSurface, RecipeError


def valid(surface: ActionSurface, recipe: dict) -> dict | None:
    """``recipe`` as the surface checks it, or None when it breaks a bound or the task's constraint."""
    try:
        return surface.check(recipe)
    except RecipeError:
        return None


def draw(surface: ActionSurface, rng: random.Random, tries: int = 100) -> dict:
    """A recipe drawn uniformly on every knob's own scale (log or linear), satisfying the task's constraint."""
    for _ in range(tries):
        recipe = valid(surface, {k.name: k.at(rng.random()) for k in surface.knobs})
        if recipe is not None:
            return recipe
    raise ConfigError(f"no recipe drawn in {tries} tries satisfies the task's constraint")


class Chains(Policy):
    """Constant-recipe chains from the root: continue unfinished chains first, then start new trials.

    A subclass names its ``source`` and says what the next trial is (:meth:`next_trial`); it may stop a chain
    at a segment's end (:meth:`continues`). With ``base`` (``policy.base_first``) the first trial is the task's
    base recipe, as practitioners enqueue their default before searching."""

    source: str

    def __init__(self, surface: ActionSurface, max_depth: int, horizon: int,
                 base: Mapping[str, float] | None = None):
        self.surface, self.max_depth, self.horizon = surface, max_depth, horizon
        self.base = dict(base) if base is not None else None

    def plan(self, nodes, *, in_flight, closed, budget) -> Plan:
        unfinished = retry(nodes, in_flight)
        if unfinished is not None:
            return unfinished
        tips = [n for n in nodes if n.status is NodeStatus.DONE and 0 < n.depth < self.max_depth
                and not T.children(nodes, n.id) and n.id not in closed and self.continues(n, nodes)]
        if tips:
            return Grow(tips[0].id, tips[0].recipe, self.source, f"{self.source}: continue the chain")
        fits = self.can_start(budget, self.owed(nodes, in_flight))
        if fits:
            trial = self.first_trial() if self.base is not None and not self.trials(nodes) else self.next_trial(nodes)
            if trial is not None:
                recipe, note, tag = trial
                return Grow(T.root(nodes).id, recipe, self.source, note, tag)
        if in_flight:
            return Wait("chains still training")
        return Exhausted(f"{self.source}: every trial has run" if fits
                         else f"{self.source}: no further trial fits the budget")

    def can_start(self, budget: Budget, owed: int) -> bool:
        """Whether a new chain may start: the steps left (not spent nor committed) pay for its whole horizon
        after the chains already started have trained the ``owed`` steps they still need."""
        return budget.can_finish(self.horizon, owed)

    def owed(self, nodes: Sequence[Node], in_flight: AbstractSet[int]) -> int:
        """Steps the chains already started still need to reach the horizon, beyond their segments in flight
        or unfinished (those are committed already): with several workers, a new chain must not take them."""
        segment = self.horizon // self.max_depth
        parents = {n.parent_id for n in nodes}
        return sum((self.max_depth - n.depth) * segment for n in nodes
                   if 0 < n.depth < self.max_depth and n.id not in parents
                   and (n.id in in_flight or n.status in UNFINISHED
                        or (n.status is NodeStatus.DONE and self.continues(n, nodes))))

    def continues(self, tip: Node, nodes: Sequence[Node]) -> bool:
        """Whether the chain whose last segment is ``tip`` (done, below the horizon) trains on (ASHA's rungs and
        Optuna's pruners stop some chains at a segment's end)."""
        return True

    def first_trial(self) -> tuple[dict, str, Any] | None:
        """The task's base recipe, first (``policy.base_first``)."""
        return dict(self.base), f"{self.source}: the task's base recipe first (policy.base_first)", None

    def next_trial(self, nodes: Sequence[Node]) -> tuple[dict, str, Any] | None:
        """The recipe of the next chain, a note for the trace and a tag, or None when there is none."""
        raise NotImplementedError

    def own_trials(self, nodes: Sequence[Node]) -> int:
        """How many trials the method itself has chosen (the base recipe first is not one of them)."""
        return len(self.trials(nodes)) - (self.base is not None and bool(self.trials(nodes)))

    def may_expand(self, node, nodes, closed):
        return node.is_root or (super().may_expand(node, nodes, closed) and 0 < node.depth < self.max_depth
                                and not T.children(nodes, node.id) and self.continues(node, nodes))

    def stopper(self, node, configured):
        return None  # a practitioner's constant run trains to the end

    @staticmethod
    def trials(nodes: Sequence[Node]) -> list[Node]:
        """The chains' first segments, in the order they were started."""
        return [n for n in nodes if n.depth == 1]
