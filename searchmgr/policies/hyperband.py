"""``hyperband``: constant-recipe chains proposed by Optuna's TPE sampler and stopped by Optuna's own
``HyperbandPruner`` (Li et al., JMLR 2018; the pairing Optuna recommends), reported at every evaluation.

The resource is the training step: the pruner's smallest resource is one segment and its largest the horizon,
with Optuna's reduction factor 3 unless ``policy.reduction_factor`` says otherwise. A chain may be stopped
inside a segment (the node is pruned) or at a segment's end (the node is done; its chain does not continue).
Optuna assigns each trial a bracket from the study's name and the trial's number, so the study is named after
the run's seed and ``--resume`` replays the stored chains into the same brackets (:meth:`TPEPolicy.resume`).
"""

from __future__ import annotations

from searchmgr.policies.tpe import TPEPolicy

REDUCTION_FACTOR = 3  # Optuna's default


class HyperbandPolicy(TPEPolicy):
    """TPE with Optuna's HyperbandPruner instead of its median pruner."""

    name = "hyperband"
    source = "hyperband"
    pruner_name = "hyperband pruner"

    def __init__(self, surface, max_depth, horizon, seed: int, objective, *, segment_steps: int,
                 rf: int = REDUCTION_FACTOR, base=None):
        self.segment_steps, self.rf = segment_steps, rf
        super().__init__(surface, max_depth, horizon, seed, objective, base=base)

    def pruner(self):
        return self.optuna.pruners.HyperbandPruner(min_resource=self.segment_steps, max_resource=self.horizon,
                                                   reduction_factor=self.rf)


def build(config, task) -> HyperbandPolicy:
    p = config.policy
    return HyperbandPolicy(task.surface, config.max_depth, config.horizon, config.seed, task.objective,
                           segment_steps=config.segment_steps, rf=p.reduction_factor or REDUCTION_FACTOR,
                           base=task.base_recipe() if p.base_first else None)
