"""``pbt``: population-based training (Jaderberg et al. 2017; Ray Tune's ``PopulationBasedTraining``).

A population of chains trained in synchronous generations of one segment; at each boundary
the bottom ``quantile`` copies a top-``quantile`` member's checkpoint (the new node is that
member's child) and perturbs its recipe (each knob x0.8 or x1.2, or resampled with
probability 0.25). The state is the stored tree itself, so ``--resume`` continues it.
"""

from __future__ import annotations

import random
from typing import Sequence

from searchmgr import tree as T
from searchmgr.policies.base import Exhausted, Grow, Plan, Policy, Wait, retry
from searchmgr.policies.chains import draw, valid
from searchmgr.store import Node, NodeStatus
from searchmgr.surface import ActionSurface


class PBTPolicy(Policy):
    """Synchronous PBT: generation g+1 starts when every member of generation g has finished."""

    name = "pbt"
    source = "pbt"

    def __init__(self, surface: ActionSurface, max_depth: int, population: int, quantile: float, seed: int,
                 objective):
        self.surface, self.max_depth, self.population, self.seed = surface, max_depth, population, seed
        self.quantile, self.objective = quantile, objective

    def members(self, nodes: Sequence[Node], depth: int) -> list[Node]:
        """Generation ``depth``, member order = creation order."""
        return [n for n in nodes if n.depth == depth and n.source == self.source]

    def plan(self, nodes, *, in_flight, closed, budget) -> Plan:
        unfinished = retry(nodes, in_flight)
        if unfinished is not None:
            return unfinished
        root = T.root(nodes)
        first = self.members(nodes, 1)
        if len(first) < self.population:
            i = len(first)
            recipe = draw(self.surface, random.Random(f"pbt-{self.seed}-init-{i}"))
            return Grow(root.id, recipe, self.source, f"{self.source} member {i}: random initial recipe")
        for depth in range(1, self.max_depth):
            gen, nxt = self.members(nodes, depth), self.members(nodes, depth + 1)
            if len(nxt) == self.population:
                continue
            if not all(n.status.finished for n in gen):
                return Wait("pbt: the generation is still training")
            return self._next(nodes, gen, len(nxt), depth)
        return Wait("pbt: the last generation is training") if in_flight else Exhausted("pbt: every generation ran")

    def _next(self, nodes: Sequence[Node], gen: list[Node], j: int, depth: int) -> Grow:
        """Member ``j`` of the next generation: continue, or exploit a top member and explore its recipe."""
        u = self.objective.utility
        order = sorted(range(len(gen)), key=lambda i: (gen[i].status is NodeStatus.DONE, u(gen[i].val_score)))
        cut = max(1, int(self.quantile * len(gen)))
        bottom, top = set(order[:cut]), order[-cut:]
        me = gen[j]
        usable = me.status is NodeStatus.DONE and me.checkpoint is not None
        if j not in bottom and usable:
            return Grow(me.id, me.recipe, self.source, f"{self.source} member {j}: continue")
        rng = random.Random(f"pbt-{self.seed}-{depth}-{j}")
        donor = gen[rng.choice(top)]
        recipe, how = self.explore(nodes, donor, rng)
        return Grow(donor.id, recipe, self.source, f"{self.source} member {j}: exploit member {gen.index(donor)} "
                    f"(node {donor.id}), then explore its recipe: {how}")

    def explore(self, nodes: Sequence[Node], donor: Node, rng: random.Random) -> tuple[dict, str]:
        """The exploited member's new recipe, and how it was chosen."""
        return self.perturb(donor.recipe, rng), "each knob x0.8 or x1.2, or resampled with probability 0.25"

    def perturb(self, recipe: dict, rng: random.Random) -> dict:
        for _ in range(100):
            out = {}
            for k in self.surface.knobs:
                if rng.random() < 0.25:
                    out[k.name] = k.at(rng.random())
                else:
                    v = recipe[k.name] * rng.choice((0.8, 1.2))
                    v = min(max(v, k.low), k.high)
                    out[k.name] = float(round(v)) if k.integer else v
            checked = valid(self.surface, out)
            if checked is not None:
                return checked
        return dict(recipe)

    def may_expand(self, node, nodes, closed):
        if node.is_root:
            return len(self.members(nodes, 1)) < self.population
        if node.status is not NodeStatus.DONE or node.depth >= self.max_depth:
            return False
        # a member is a possible donor until the next generation is complete
        return len(self.members(nodes, node.depth + 1)) < self.population

    def stopper(self, node, configured):
        return None


def build(config, task) -> PBTPolicy:
    population = config.policy.population or config.budget.steps // config.horizon
    return PBTPolicy(task.surface, config.max_depth, population, config.policy.quantile, config.seed,
                     task.objective)
