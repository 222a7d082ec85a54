"""``grid``: constant-recipe chains over a grid of the knobs (listed values, or evenly spaced points)."""

from __future__ import annotations

import itertools
import math

from searchmgr.policies.chains import Chains, valid


class GridPolicy(Chains):
    """Walks a grid: listed values per knob (``policy.grid``), the other knobs at the fewest evenly spaced
    points whose grid covers the trials the budget pays for; thinned evenly when it has more points."""

    name = "grid"
    source = "grid"

    def __init__(self, surface, max_depth, horizon, values: dict[str, list[float]], budget_steps: int,
                 base: dict, base_first: bool = False):
        super().__init__(surface, max_depth, horizon, base if base_first else None)
        trials = max(budget_steps // horizon - base_first, 1)  # the base recipe first takes one of them
        axes = {}
        for k in surface.knobs:
            if k.name in values:
                axes[k.name] = [float(v) for v in values[k.name]]
        free = [k for k in surface.knobs if k.name not in values]
        given = math.prod(len(v) for v in axes.values()) if axes else 1
        # unlisted knobs: the fewest evenly spaced points per knob whose grid covers the trials the budget pays for
        m = 1
        while free and given * m ** len(free) < trials:
            m += 1
        for k in free:
            axes[k.name] = [k.at((i + 0.5) / m) for i in range(m)] if m > 1 else [base[k.name]]
        names = list(axes)
        points = [dict(zip(names, p)) for p in itertools.product(*(axes[n] for n in names))]
        points = [p for p in (valid(surface, p) for p in points) if p is not None]
        if len(points) > trials:  # evenly spaced through the grid's order, so every axis is still swept
            points = [points[round(i * (len(points) - 1) / max(trials - 1, 1))] for i in range(trials)]
        self.points = points

    def next_trial(self, nodes):
        i = self.own_trials(nodes)
        if i >= len(self.points):
            return None
        return self.points[i], f"grid point {i + 1} of {len(self.points)}", None


def build(config, task) -> GridPolicy:
    return GridPolicy(task.surface, config.max_depth, config.horizon, config.policy.grid, config.budget.steps,
                      task.base_recipe(), config.policy.base_first)
