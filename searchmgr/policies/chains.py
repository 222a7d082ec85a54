"""Constant-recipe chains from the root: the shared shape of the ``grid``, ``random`` and ``tpe`` baselines.

Each trial is a *chain*: the same recipe for every segment up to the horizon, so its best
schedule can be shown, exported and replayed like the tree's. Unfinished chains are
continued first; a new trial starts only when the budget left can pay for its whole
horizon. Every chain policy rebuilds its state from the stored nodes, so ``--resume``
continues it.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from searchmgr import tree as T
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

    A subclass names its ``source`` and says what the next trial is (:meth:`next_trial`)."""

    source: str

    def __init__(self, surface: ActionSurface, max_depth: int, horizon: int):
        self.surface, self.max_depth, self.horizon = surface, max_depth, horizon

    def plan(self, nodes, *, in_flight, closed, budget_left) -> Plan:
        unfinished = retry(nodes, in_flight)
        if unfinished is not None:
            return unfinished
        tips = [n for n in nodes if n.status is NodeStatus.DONE and 0 < n.depth < self.max_depth
                and not T.children(nodes, n.id) and n.id not in closed]
        if tips:
            return Grow(tips[0].id, tips[0].recipe, self.source, f"{self.source}: continue the chain")
        steps_left = budget_left
        if steps_left >= self.horizon:
            trial = self.next_trial(nodes)
            if trial is not None:
                recipe, note, tag = trial
                return Grow(T.root(nodes).id, recipe, self.source, note, tag)
        if in_flight:
            return Wait("chains still training")
        return Exhausted(f"{self.source}: no further trial fits the budget" if steps_left < self.horizon
                         else f"{self.source}: every trial has run")

    def next_trial(self, nodes: Sequence[Node]) -> tuple[dict, str, Any] | None:
        """The recipe of the next chain, a note for the trace and a tag, or None when there is none."""
        raise NotImplementedError

    def may_expand(self, node, nodes, closed):
        return node.is_root or (super().may_expand(node, nodes, closed) and 0 < node.depth < self.max_depth
                                and not T.children(nodes, node.id))

    def stopper(self, node, configured):
        return None  # a practitioner's constant run trains to the end

    @staticmethod
    def trials(nodes: Sequence[Node]) -> list[Node]:
        """The chains' first segments, in the order they were started."""
        return [n for n in nodes if n.depth == 1]
