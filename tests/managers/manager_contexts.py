"""Contexts shared by the manager and stopper conformance suites."""

from searchmgr.managers import ProposalContext, Sibling
from searchmgr.tasks import make_task
from searchmgr.telemetry import summarize


def history(train, val, start=0, every=10):
    return [(start + every * (i + 1), {"train/loss": t, "val/loss": v}) for i, (t, v) in enumerate(zip(train, val))]


OVERFIT = history([1.0, 0.8, 0.6, 0.4, 0.3], [1.0, 0.95, 0.97, 1.0, 1.05])
HEALTHY = history([1.0, 0.9, 0.8, 0.7, 0.6], [1.1, 1.0, 0.9, 0.8, 0.7])
DIVERGED = history([1.0, 0.9, 3.0, 8.0, float("nan")], [1.0, 0.9, 3.0, 9.0, float("nan")])


def make_context(task_name="toy", hist=OVERFIT, siblings=(), recipe=None, parent_id=2, extra_options=None,
                 evidence=(), parent_utility=None):
    task = make_task(task_name, {"preset": "smoke", **(extra_options or {})})
    recipe = recipe or task.base_recipe()
    return ProposalContext(
        task=task.name, family=task.family, description=task.description, objective=task.objective,
        surface=task.surface, parent_id=parent_id, parent_recipe=recipe, depth=2, max_depth=3, start_step=50,
        end_step=100, telemetry=summarize(hist, task.objective), path=(), siblings=tuple(
            Sibling(10 + i, r, "done", 1.0, None) for i, r in enumerate(siblings)),
        budget_left_steps=500, seed=0, evidence=tuple(evidence), parent_utility=parent_utility)

