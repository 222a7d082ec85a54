"""CheckedTask: a task wrapped so that what only training shows is checked too.

:func:`searchmgr.tasks.load_task` checks a task's declarations before anything is
created; this wrapper checks, at the first segment that breaks one, what ``init``
and ``train_segment`` actually do: ``init`` returns a dict; every evaluation's
metrics are namespaced numbers at a step inside the segment; a segment that ran to
its end trained exactly ``segment.steps`` steps, returns a checkpoint dict and ends
with the objective's validation and test metrics; a stopped segment stopped because
``on_eval`` asked it to. A violation raises :class:`TaskContractError`, naming the fix.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

from searchmgr.surface import ActionSurface, Recipe
from searchmgr.tasks.base import Family, OnEval, Segment, SegmentResult, SearchDefaults, Task, is_namespaced
from searchmgr.tasks.source import TaskError, TaskSource


class TaskContractError(TaskError):
    """A task whose training broke the contract of docs/tasks.md."""


def check_metrics(name: str, step: int, metrics: Any) -> None:
    """Metrics are a dict of namespaced keys (``val/loss``) to real numbers (NaN allowed: divergence)."""
    if not isinstance(metrics, dict):
        raise TaskContractError(f"task {name} passed {type(metrics).__name__} metrics to on_eval at step {step}; "
                                "pass a dict like {'val/loss': 0.5}")
    bare = [k for k in metrics if not is_namespaced(k)]
    if bare:
        raise TaskContractError(f"task {name} reported metrics without a namespace at step {step}: {bare}; name "
                                "them like 'train/loss', 'val/loss', 'test/loss'")
    bad = {k: v for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, Real)}
    if bad:
        raise TaskContractError(f"task {name} reported non-numeric metrics at step {step}: "
                                f"{ {k: type(v).__name__ for k, v in bad.items()} }; report floats")


class CheckedTask(Task):
    """Delegates to ``inner`` and checks the contract at run time; ``source`` is the task's provenance."""

    def __init__(self, inner: Task, source: TaskSource):  # not Task.__init__: the options are inner's
        self.inner = inner
        self.source = source
        self.name, self.family, self.objective = inner.name, inner.family, inner.objective
        self.description, self.options, self.presets = inner.description, inner.options, inner.presets

    def __getattr__(self, attr: str) -> Any:  # task-specific helpers stay reachable
        return getattr(self.inner, attr)

    @property
    def surface(self) -> ActionSurface:
        return self.inner.surface

    def base_recipe(self) -> Recipe:
        return self.inner.base_recipe()

    def search_defaults(self) -> SearchDefaults:
        return self.inner.search_defaults()

    def info(self) -> dict[str, Any]:
        info = self.inner.info()
        if not isinstance(info, dict):
            raise TaskContractError(f"task {self.name}: info() must return a dict, not {type(info).__name__}")
        return {**info, "task_source": self.source.to_info(), "objective": self.objective.to_dict(),
                "family": Family(self.family).value}

    @property
    def evaluates_checkpoints(self) -> bool:
        return self.inner.evaluates_checkpoints

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        metrics = self.inner.evaluate_checkpoint(checkpoint, seed)
        check_metrics(self.name, 0, metrics)
        if self.objective.metric not in metrics:
            raise TaskContractError(f"task {self.name}: evaluate_checkpoint returned {sorted(metrics)[:10]}, "
                                    f"without the objective's metric {self.objective.metric}; return it")
        return metrics

    def init(self, seed: int) -> dict:
        state = self.inner.init(seed)
        if not isinstance(state, dict):
            raise TaskContractError(f"task {self.name}: init() returned {type(state).__name__}; return the root "
                                    "checkpoint as a dict (model state, optimizer state, RNG ...)")
        return state

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        asked: list[int] = []  # steps at which on_eval asked to stop
        evals: list[int] = []

        def checked(step: int, metrics: dict[str, float]) -> bool:
            if isinstance(step, bool) or not isinstance(step, int) or not (
                    segment.start_step < step <= segment.end_step):
                raise TaskContractError(
                    f"task {self.name} called on_eval at step {step!r}, outside the segment "
                    f"({segment.start_step}, {segment.end_step}]; pass the global step after the update")
            check_metrics(self.name, step, metrics)
            evals.append(step)
            stop = bool(on_eval(step, metrics))
            if stop:
                asked.append(step)
            return stop

        result = self.inner.train_segment(checkpoint, recipe, segment, checked)
        name, objective = self.name, self.objective
        if not isinstance(result, SegmentResult):
            raise TaskContractError(f"task {name}: train_segment returned {type(result).__name__}; return "
                                    "SegmentResult(checkpoint, steps_done, metrics, stopped)")
        check_metrics(name, segment.end_step, result.metrics)
        if result.stopped:
            if not asked:
                raise TaskContractError(f"task {name} returned stopped=True but on_eval never asked it to stop; "
                                        "stop only when on_eval returns True")
            if not 0 < result.steps_done <= segment.steps:
                raise TaskContractError(f"task {name} stopped after steps_done={result.steps_done}; report the "
                                        f"steps it trained, between 1 and {segment.steps}")
            return result
        if result.steps_done != segment.steps:
            raise TaskContractError(f"task {name} trained steps_done={result.steps_done} steps in a segment of "
                                    f"{segment.steps}; train exactly segment.steps steps (from start_step "
                                    f"{segment.start_step} to {segment.end_step})")
        if not evals or evals[-1] != segment.end_step:
            raise TaskContractError(f"task {name} did not evaluate at the segment's last step {segment.end_step} "
                                    f"(on_eval steps: {evals}); always call on_eval after the last step")
        missing = [m for m in (objective.metric, objective.test_metric) if m not in result.metrics]
        if missing:
            raise TaskContractError(f"task {name}: the final metrics lack {missing}; the last evaluation of a "
                                    f"segment that ran to its end must report {objective.metric!r} and the test "
                                    f"metric {objective.test_metric!r}")
        if not isinstance(result.checkpoint, dict):
            raise TaskContractError(f"task {name} returned a {type(result.checkpoint).__name__} checkpoint for a "
                                    "finished segment; return a dict that resumes training exactly")
        return result
