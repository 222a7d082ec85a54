"""The baselines practitioners already run, as policies over the same tree store.

* ``grid``, ``random``, ``tpe``: constant recipes. Each trial is a *chain* from the root:
  the same recipe for every segment up to the horizon, so its best schedule can be
  shown, exported and replayed like the tree's. ``grid`` walks a grid over the knobs,
  ``random`` draws recipes on each knob's own scale, ``tpe`` asks Optuna's TPE sampler
  and prunes chains with Optuna's median pruner (reported at every evaluation).
* ``pbt``: population-based training (Jaderberg et al. 2017; Ray Tune's
  ``PopulationBasedTraining``). A population of chains trained in synchronous
  generations of one segment; at each boundary the bottom ``quantile`` copies a
  top-``quantile`` member's checkpoint (the new node is that member's child) and
  perturbs its recipe (each knob x0.8 or x1.2, or resampled with probability 0.25).

A new trial starts only when the budget left can pay for its whole horizon. Every
policy rebuilds its state from the stored nodes, so ``--resume`` continues it.
"""

from __future__ import annotations

import itertools
import math
import random as pyrandom
from typing import Any, Sequence

from searchmgr import tree as T
from searchmgr.config import ConfigError
from searchmgr.policy import Exhausted, Grow, Plan, Policy, Wait, retry
from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.store import Node, NodeStatus
from searchmgr.surface import ActionSurface, RecipeError


def _valid(surface: ActionSurface, recipe: dict) -> dict | None:
    try:
        return surface.check(recipe)
    except RecipeError:
        return None


def _draw(surface: ActionSurface, rng: pyrandom.Random, tries: int = 100) -> dict:
    """A recipe drawn uniformly on every knob's own scale (log or linear), satisfying the task's constraint."""
    for _ in range(tries):
        recipe = _valid(surface, {k.name: k.at(rng.random()) for k in surface.knobs})
        if recipe is not None:
            return recipe
    raise ConfigError(f"no recipe drawn in {tries} tries satisfies the task's constraint")


class _Chains(Policy):
    """Constant-recipe chains from the root: continue unfinished chains first, then start new trials."""

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


class GridPolicy(_Chains):
    source = "grid"

    def __init__(self, surface, max_depth, horizon, values: dict[str, list[float]], budget_steps: int,
                 base: dict):
        super().__init__(surface, max_depth, horizon)
        trials = max(budget_steps // horizon, 1)
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
        points = [p for p in (_valid(surface, p) for p in points) if p is not None]
        if len(points) > trials:  # evenly spaced through the grid's order, so every axis is still swept
            points = [points[round(i * (len(points) - 1) / max(trials - 1, 1))] for i in range(trials)]
        self.points = points

    def next_trial(self, nodes):
        i = len(self.trials(nodes))
        if i >= len(self.points):
            return None
        return self.points[i], f"grid point {i + 1} of {len(self.points)}", None


class RandomPolicy(_Chains):
    source = "random"

    def __init__(self, surface, max_depth, horizon, seed: int):
        super().__init__(surface, max_depth, horizon)
        self.seed = seed

    def next_trial(self, nodes):
        i = len(self.trials(nodes))
        return _draw(self.surface, pyrandom.Random(f"random-{self.seed}-{i}")), f"random trial {i + 1}", None


class _OptunaPruner(Stopper):
    """Reports every evaluation of a TPE chain to its Optuna trial and prunes when the pruner says so."""

    name = "optuna"

    def __init__(self, trial):
        self.trial = trial

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        value = ctx.trajectory[-1][1]
        self.trial.report(value, ctx.step)
        if self.trial.should_prune():
            return StopVerdict(True, f"optuna median pruner: {ctx.objective.metric}={value:.4g} at step {ctx.step} "
                                     "is worse than the median of earlier trials there")
        return CONTINUE


class TPEPolicy(_Chains):
    source = "tpe"

    def __init__(self, surface, max_depth, horizon, seed: int, objective):
        super().__init__(surface, max_depth, horizon)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.objective = objective
        self.dists = {k.name: (optuna.distributions.IntDistribution(int(k.low), int(k.high),
                                                                    log=k.scale.value == "log") if k.integer else
                               optuna.distributions.FloatDistribution(k.low, k.high, log=k.scale.value == "log"))
                      for k in surface.knobs}
        self.study = optuna.create_study(
            direction="minimize" if objective.direction.value == "minimize" else "maximize",
            sampler=optuna.samplers.TPESampler(seed=seed), pruner=optuna.pruners.MedianPruner())
        self.live: dict[int, Any] = {}  # chain (depth-1 node id) -> running optuna trial
        self.index: dict[int, Node] = {}

    def resume(self, nodes: Sequence[Node], metrics) -> None:
        """Replay stored chains into the study (resume): finished trials as they ended, open ones re-asked."""
        for first in self.trials(nodes):
            chain = [first]
            while kids := T.children(nodes, chain[-1].id):
                chain.append(kids[0])
            params = {k: first.recipe[k] for k in self.dists}
            inter = {s: m[self.objective.metric] for n in chain for s, m in metrics(n.id)
                     if self.objective.metric in m}
            last = chain[-1]
            state = self.optuna.trial.TrialState
            if last.status is NodeStatus.DONE and last.depth == self.max_depth:
                self.study.add_trial(self.optuna.trial.create_trial(
                    params=params, distributions=self.dists, value=last.val_score, intermediate_values=inter))
            elif last.status in (NodeStatus.PRUNED, NodeStatus.FAILED):
                self.study.add_trial(self.optuna.trial.create_trial(
                    params=params, distributions=self.dists, intermediate_values=inter,
                    state=state.PRUNED if last.status is NodeStatus.PRUNED else state.FAIL))
            else:
                self.study.enqueue_trial(params)
                trial = self.study.ask(self.dists)
                for s, v in inter.items():
                    trial.report(v, s)
                self.live[first.id] = trial

    def next_trial(self, nodes):
        for _ in range(100):
            trial = self.study.ask(self.dists)
            recipe = _valid(self.surface, dict(trial.params))
            if recipe is not None:
                return recipe, f"optuna TPE trial {trial.number}", trial
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)  # outside the task's constraint
        raise ConfigError("TPE proposed 100 recipes outside the task's constraint")

    def added(self, node, tag):
        if tag is not None:
            self.live[node.id] = tag

    def stopper(self, node, configured):
        trial = self.live.get(self._first(node))
        return _OptunaPruner(trial) if trial is not None else None

    def told(self, node):
        first = self._first(node)
        trial = self.live.get(first)
        if trial is None:
            return
        state = self.optuna.trial.TrialState
        if node.status is NodeStatus.PRUNED:
            self.study.tell(trial, state=state.PRUNED)
        elif node.status is NodeStatus.FAILED:
            self.study.tell(trial, state=state.FAIL)
        elif node.depth == self.max_depth:
            self.study.tell(trial, node.val_score)
        else:
            return
        del self.live[first]

    def _first(self, node: Node) -> int:
        """The id of the chain's first segment (the key of its trial)."""
        while node.depth > 1:
            node = self.index[node.parent_id]
        return node.id

    def plan(self, nodes, *, in_flight, closed, budget_left):
        self.index = T.by_id(nodes)  # a node's ancestors are in the snapshot it was planned from
        return super().plan(nodes, in_flight=in_flight, closed=closed, budget_left=budget_left)


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

    def plan(self, nodes, *, in_flight, closed, budget_left) -> Plan:
        unfinished = retry(nodes, in_flight)
        if unfinished is not None:
            return unfinished
        root = T.root(nodes)
        first = self.members(nodes, 1)
        if len(first) < self.population:
            i = len(first)
            recipe = _draw(self.surface, pyrandom.Random(f"pbt-{self.seed}-init-{i}"))
            return Grow(root.id, recipe, self.source, f"pbt member {i}: random initial recipe")
        for depth in range(1, self.max_depth):
            gen, nxt = self.members(nodes, depth), self.members(nodes, depth + 1)
            if len(nxt) == self.population:
                continue
            if not all(n.status.finished for n in gen):
                return Wait("pbt: the generation is still training")
            return self._next(gen, len(nxt), depth)
        return Wait("pbt: the last generation is training") if in_flight else Exhausted("pbt: every generation ran")

    def _next(self, gen: list[Node], j: int, depth: int) -> Grow:
        """Member ``j`` of the next generation: continue, or exploit a top member and explore its recipe."""
        u = self.objective.utility
        order = sorted(range(len(gen)), key=lambda i: (gen[i].status is NodeStatus.DONE, u(gen[i].val_score)))
        cut = max(1, int(self.quantile * len(gen)))
        bottom, top = set(order[:cut]), order[-cut:]
        me = gen[j]
        usable = me.status is NodeStatus.DONE and me.checkpoint is not None
        if j not in bottom and usable:
            return Grow(me.id, me.recipe, self.source, f"pbt member {j}: continue")
        rng = pyrandom.Random(f"pbt-{self.seed}-{depth}-{j}")
        donor = gen[rng.choice(top)]
        recipe = self._explore(donor.recipe, rng)
        return Grow(donor.id, recipe, self.source,
                    f"pbt member {j}: exploit member {gen.index(donor)} (node {donor.id}), then explore its recipe")

    def _explore(self, recipe: dict, rng: pyrandom.Random) -> dict:
        for _ in range(100):
            out = {}
            for k in self.surface.knobs:
                if rng.random() < 0.25:
                    out[k.name] = k.at(rng.random())
                else:
                    v = recipe[k.name] * rng.choice((0.8, 1.2))
                    v = min(max(v, k.low), k.high)
                    out[k.name] = float(round(v)) if k.integer else v
            valid = _valid(self.surface, out)
            if valid is not None:
                return valid
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


def make(name: str, config, task) -> Policy:
    """The baseline ``name`` (its settings were checked by :func:`searchmgr.search.resolve`)."""
    surface, horizon = task.surface, config.horizon
    if name == "grid":
        return GridPolicy(surface, config.max_depth, horizon, config.policy.grid, config.budget.steps,
                          task.base_recipe())
    if name == "random":
        return RandomPolicy(surface, config.max_depth, horizon, config.seed)
    if name == "tpe":
        return TPEPolicy(surface, config.max_depth, horizon, config.seed, task.objective)
    population = config.policy.population or config.budget.steps // horizon
    return PBTPolicy(surface, config.max_depth, population, config.policy.quantile, config.seed, task.objective)
