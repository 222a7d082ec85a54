"""``tpe``: constant-recipe chains proposed by Optuna's TPE sampler and pruned by its median pruner."""

from __future__ import annotations

from typing import Any, Sequence

from searchmgr import tree as T
from searchmgr.config import ConfigError
from searchmgr.policies.chains import Chains, valid
from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.store import Node, NodeStatus


class OptunaPruner(Stopper):
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


class TPEPolicy(Chains):
    """Optuna's TPE sampler proposes each chain's recipe; its median pruner, reported at every evaluation
    (:class:`OptunaPruner`), stops chains. Stored chains are replayed into the study on resume."""

    name = "tpe"
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
        return OptunaPruner(trial) if trial is not None else None

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


def build(config, task) -> TPEPolicy:
    return TPEPolicy(task.surface, config.max_depth, config.horizon, config.seed, task.objective)
