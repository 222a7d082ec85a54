"""``random``: constant-recipe chains, each recipe drawn on every knob's own scale (log or linear)."""

from __future__ import annotations

import random as pyrandom

from searchmgr.policies.chains import Chains, draw


class RandomPolicy(Chains):
    """Trial ``i`` draws its recipe from a generator seeded by the run's seed and ``i`` (so resume repeats it)."""

    name = "random"
    source = "random"

    def __init__(self, surface, max_depth, horizon, seed: int, base=None):
        super().__init__(surface, max_depth, horizon, base)
        self.seed = seed

    def next_trial(self, nodes):
        i = self.own_trials(nodes)  # the same draws with or without the base recipe first
        return draw(self.surface, pyrandom.Random(f"random-{self.seed}-{i}")), f"{self.source} trial {i + 1}", None


def build(config, task) -> RandomPolicy:
    return RandomPolicy(task.surface, config.max_depth, config.horizon, config.seed,
                        task.base_recipe() if config.policy.base_first else None)
