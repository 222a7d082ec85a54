"""The Task contract: one training workload the search can grow a tree over.

A task owns its training loop. The search only ever calls :meth:`Task.init` once
(the root checkpoint) and :meth:`Task.train_segment` for every node, passing the
parent's checkpoint, the node's recipe and the step range. Checkpoints are plain
dicts (``torch.save``-able: model, optimizer, step, RNG states ...) that hold
everything needed to resume exactly. The search loads every checkpoint onto the CPU
(``map_location="cpu"``); the task moves what it needs to its ``device``. A step is
the task's own unit (an optimizer step, a PPO iteration, an epoch).

Inside a segment the task evaluates every ``segment.eval_every`` steps and always
at the last step, calling ``on_eval(step, metrics)`` with namespaced metric keys
(``train/loss``, ``val/loss``, ``rl/safe_success`` ...). When ``on_eval`` returns
``True`` the task stops at once and returns what it has (``stopped=True``); the
checkpoint of a stopped segment may be ``None``. The final evaluation of a
segment that ran to its end must include the objective's test metric.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from searchmgr.objective import Direction, Family, Objective, TieBreak  # noqa: F401  (re-exported)
from searchmgr.sanitize import shorten
from searchmgr.surface import ActionSurface, Recipe


@dataclass(frozen=True)
class Segment:
    """The step range one node trains.

    ``horizon`` is the length of a full schedule (``max_depth * segment_steps``);
    tasks use it for step-dependent schedules such as a cosine learning rate.
    """

    start_step: int
    steps: int
    horizon: int
    eval_every: int

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


OnEval = Callable[[int, dict[str, float]], bool]


@dataclass
class SegmentResult:
    """What a segment produced; ``metrics`` are the values of the last evaluation."""

    checkpoint: dict | None
    steps_done: int
    metrics: dict[str, float]
    stopped: bool = False


class SearchDefaults(BaseModel):
    """Search settings a task suggests for one of its presets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_steps: int
    max_depth: int
    budget_steps: int
    eval_every: int


class EvaluationUnsupported(NotImplementedError):
    """The task cannot evaluate a checkpoint afresh (it does not implement :meth:`Task.evaluate_checkpoint`)."""


class TaskOptions(BaseModel):
    """Base of every task's options; ``preset`` picks sizes and budgets."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "default"


class Task(ABC):
    """A training workload behind one contract (see the module docstring)."""

    name: ClassVar[str]
    family: ClassVar[Family]
    objective: ClassVar[Objective]
    description: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    presets: ClassVar[tuple[str, ...]] = ("default",)

    def __init__(self, options: TaskOptions | None = None):
        self.options = options if options is not None else self.Options()
        if self.options.preset not in self.presets:
            raise ValueError(
                f"task {self.name} has no preset {shorten(self.options.preset)}; choose one of {list(self.presets)}"
            )

    @property
    @abstractmethod
    def surface(self) -> ActionSurface:
        """The knobs this task exposes."""

    @abstractmethod
    def base_recipe(self) -> Recipe:
        """The fixed recipe: the all-hold path of the tree trains it."""

    @abstractmethod
    def search_defaults(self) -> SearchDefaults:
        """Segment length, depth, budget and evaluation interval for the preset."""

    @abstractmethod
    def init(self, seed: int) -> dict:
        """Build the root checkpoint (untrained model, optimizer state, RNG)."""

    @abstractmethod
    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        """Train ``segment.steps`` steps from ``checkpoint`` under ``recipe``."""

    def info(self) -> dict[str, Any]:
        """Provenance worth recording with the run (data source, model size ...)."""
        return {}

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        """Optional: evaluate a finished segment's checkpoint afresh and return validation metrics (the
        objective's metric at least), on validation data drawn with ``seed`` (fresh episodes, a fresh sample of
        problems) or, where the data is fixed, a repeat of a noisy evaluation. ``select.reevaluate`` calls it
        to name the best schedule by more than one noisy score. Unsupported unless a task implements it."""
        raise EvaluationUnsupported(
            f"task {self.name} cannot re-evaluate a checkpoint: it does not implement "
            "evaluate_checkpoint(checkpoint, seed); implement it, or set select.reevaluate=0")

    @property
    def evaluates_checkpoints(self) -> bool:
        """Whether this task implements :meth:`evaluate_checkpoint`."""
        return type(self).evaluate_checkpoint is not Task.evaluate_checkpoint


@dataclass
class EvalRecorder:
    """A small helper for tasks: keeps the last metrics and forwards to ``on_eval``."""

    on_eval: OnEval
    last: dict[str, float] = field(default_factory=dict)

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        self.last = dict(metrics)
        return bool(self.on_eval(step, metrics))


def is_namespaced(key: Any) -> bool:
    """``'val/loss'`` yes; ``'loss'``, ``'/loss'``, ``'val/'`` no."""
    if not isinstance(key, str):
        return False
    head, sep, tail = key.partition("/")
    return bool(sep and head and tail)
