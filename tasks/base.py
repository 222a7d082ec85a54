"""The Task contract: one training workload the search can grow a tree over.

A task owns its training loop. The search only ever calls :meth:`Task.init` once
(the root checkpoint) and :meth:`Task.train_segment` for every node, passing the
parent's checkpoint, the node's recipe and the step range. Checkpoints are plain
dicts (``torch.save``-able: model, optimizer, step, RNG states ...) that hold
everything needed to resume exactly.

Inside a segment the task evaluates every ``segment.eval_every`` steps and always
at the last step, calling ``on_eval(step, metrics)`` with namespaced metric keys
(``train/loss``, ``val/loss``, ``rl/safe_success`` ...). When ``on_eval`` returns
``True`` the task stops at once and returns what it has (``stopped=True``); the
checkpoint of a stopped segment may be ``None``. The final evaluation of a
segment that ran to its end must include the objective's test metric.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict

from searchmgr.surface import ActionSurface, Recipe


class Family(str, enum.Enum):
    """Task families; the LLM manager's guidance depends on it."""

    SUPERVISED = "supervised"
    RL = "rl"
    GRPO = "grpo"


class Direction(str, enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    def utility(self, value: float) -> float:
        """Map a metric value to 'higher is better' (NaN becomes -inf)."""
        if value is None or not math.isfinite(value):
            return -math.inf
        return -value if self is Direction.MINIMIZE else value

    def better(self, a: float, b: float) -> bool:
        return self.utility(a) > self.utility(b)


@dataclass(frozen=True)
class TieBreak:
    """A secondary validation metric that orders segments whose objective ties exactly.

    A coarse objective (a success rate over a few dozen episodes) is often exactly
    0 for every early segment, which leaves UCT nothing to go by. The tie-break adds
    ``weight * squash(utility)`` to a segment's search utility, where ``squash`` maps
    the oriented tie-break value monotonically into (0, 1). ``weight`` must lie
    below the objective's resolution (the smallest difference two of its values can
    have), so the tie-break never reorders segments whose objectives differ.
    """

    metric: str
    direction: Direction
    weight: float

    def term(self, metrics: Mapping[str, float]) -> float:
        """``weight * squash(utility)`` in [0, weight); 0 when the metric is missing or not finite."""
        u = self.direction.utility(metrics.get(self.metric))
        return self.weight * (0.5 + math.atan(u) / math.pi) if math.isfinite(u) else 0.0


@dataclass(frozen=True)
class Objective:
    """The metric the search optimises (validation), its test twin (reported only) and an optional tie-break."""

    metric: str
    direction: Direction
    test_metric: str
    tiebreak: TieBreak | None = None

    def utility(self, value: float | None) -> float:
        return self.direction.utility(value)

    def to_dict(self) -> dict[str, Any]:
        tb = self.tiebreak
        return {"metric": self.metric, "direction": self.direction.value, "test_metric": self.test_metric,
                "tiebreak": None if tb is None else {"metric": tb.metric, "direction": tb.direction.value,
                                                     "weight": tb.weight}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Objective":
        tb = data.get("tiebreak")
        return cls(data["metric"], Direction(data["direction"]), data["test_metric"],
                   None if tb is None else TieBreak(tb["metric"], Direction(tb["direction"]), float(tb["weight"])))

    def search_utility(self, metrics: Mapping[str, float]) -> float:
        """What UCT backs up for a segment whose last evaluation gave ``metrics``: the objective's
        utility, plus the tie-break's term where the task has one."""
        u = self.utility(metrics.get(self.metric))
        if self.tiebreak is None or not math.isfinite(u):
            return u
        return u + self.tiebreak.term(metrics)


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
                f"task {self.name} has no preset {self.options.preset!r}; choose one of {list(self.presets)}"
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


@dataclass
class EvalRecorder:
    """A small helper for tasks: keeps the last metrics and forwards to ``on_eval``."""

    on_eval: OnEval
    last: dict[str, float] = field(default_factory=dict)

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        self.last = dict(metrics)
        return bool(self.on_eval(step, metrics))
