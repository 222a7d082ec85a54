"""``tpe``: constant-recipe chains proposed by Optuna's TPE sampler and pruned by its median pruner."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from searchmgr import tree as T
from searchmgr.config import ConfigError
from searchmgr.policies.chains import Chains, valid
from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.store import Node, NodeStatus


class OptunaPruner(Stopper):
    """Reports every evaluation of a chain to its Optuna trial and prunes when the study's pruner says so."""

    name = "optuna"

    def __init__(self, trial, pruner: str):
        self.trial, self.pruner = trial, pruner

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        value = ctx.trajectory[-1][1]
        self.trial.report(value, ctx.step)
        if self.trial.should_prune():
            return StopVerdict(True, f"optuna {self.pruner}: {ctx.objective.metric}={value:.4g} at step {ctx.step} "
                                     "is not good enough against the earlier trials there")
        return CONTINUE


class TPEPolicy(Chains):
    """Optuna's TPE sampler proposes each chain's recipe; the study's pruner (median), told every evaluation
    (:class:`OptunaPruner` inside a segment, :meth:`told` at its end), stops chains: inside a segment the node is
    pruned, at its end the chain stops there. Each trial is asked with a sampler seeded by the run's seed and the
    trial's number, and resume replays the stored chains into a new study as the run told them, so a resumed run
    asks and prunes what the uninterrupted one would have (with one worker)."""

    name = "tpe"
    source = "tpe"
    pruner_name = "median pruner"

    def __init__(self, surface, max_depth, horizon, seed: int, objective, base=None):
        super().__init__(surface, max_depth, horizon, base)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.seed = optuna, seed
        self.objective = objective
        self.dists = {k.name: (optuna.distributions.IntDistribution(int(k.low), int(k.high),
                                                                    log=k.scale.value == "log") if k.integer else
                               optuna.distributions.FloatDistribution(k.low, k.high, log=k.scale.value == "log"))
                      for k in surface.knobs}
        self.study = optuna.create_study(  # named: Optuna's HyperbandPruner picks brackets from name and number
            study_name=f"{self.source}-{seed}", pruner=self.pruner(),
            direction="minimize" if objective.direction.value == "minimize" else "maximize")
        self.live: dict[int, Any] = {}  # chain (depth-1 node id) -> running optuna trial
        self.stopped: set[int] = set()  # chains the pruner stopped at a segment's end
        self.index: dict[int, Node] = {}

    def pruner(self):
        return self.optuna.pruners.MedianPruner()

    def resume(self, nodes: Sequence[Node], metrics) -> None:
        """Replay stored chains in the order they started: each trial asked again (same number), told every
        stored evaluation the run reported (the pruner asked after each, as it was then) and ended as it ended."""
        self.index = T.by_id(nodes)
        metric = self.objective.metric
        for first in self.trials(nodes):
            self.study.enqueue_trial({k: first.recipe[k] for k in self.dists})
            trial = self._ask()
            self.live[first.id] = trial
            node: Node | None = first
            while node is not None and node.status.finished:
                for step, m in metrics(node.id):
                    if step < node.end_step and math.isfinite(m.get(metric, math.nan)):
                        trial.report(m[metric], step)
                        trial.should_prune()
                self.told(node)
                node = next(iter(T.children(nodes, node.id)), None)

    def _ask(self):
        """The study's next trial, asked with a TPE sampler seeded by the run's seed and the trial's number."""
        number = len(self.study.get_trials(deepcopy=False))
        seed = int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])
        self.study.sampler = self.optuna.samplers.TPESampler(seed=seed)
        return self.study.ask(self.dists)

    def first_trial(self):
        self.study.enqueue_trial({k: self.base[k] for k in self.dists})
        trial = self._ask()
        return dict(self.base), f"{self.source}: the task's base recipe first (policy.base_first), trial " \
                                f"{trial.number}", trial

    def next_trial(self, nodes):
        for _ in range(100):
            trial = self._ask()
            recipe = valid(self.surface, dict(trial.params))
            if recipe is not None:
                return recipe, f"optuna TPE trial {trial.number}", trial
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)  # outside the task's constraint
        raise ConfigError("TPE proposed 100 recipes outside the task's constraint")

    def added(self, node, tag):
        if tag is not None:
            self.live[node.id] = tag

    def stopper(self, node, configured):
        trial = self.live.get(self._first(node))
        return OptunaPruner(trial, self.pruner_name) if trial is not None else None

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
            trial.report(node.val_score, node.end_step)  # the segment's last evaluation, at the chain's boundary
            if not trial.should_prune():
                return
            self.study.tell(trial, state=state.PRUNED)
            self.stopped.add(first)
        del self.live[first]

    def continues(self, tip, nodes):
        return T.path_to(nodes, tip.id)[1].id not in self.stopped

    def _first(self, node: Node) -> int:
        """The id of the chain's first segment (the key of its trial)."""
        while node.depth > 1:
            node = self.index[node.parent_id]
        return node.id

    def plan(self, nodes, *, in_flight, closed, budget):
        self.index = T.by_id(nodes)  # a node's ancestors are in the snapshot it was planned from
        return super().plan(nodes, in_flight=in_flight, closed=closed, budget=budget)


def build(config, task) -> TPEPolicy:
    return TPEPolicy(task.surface, config.max_depth, config.horizon, config.seed, task.objective,
                     task.base_recipe() if config.policy.base_first else None)
