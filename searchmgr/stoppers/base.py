"""The early-stopper interface: at each evaluation inside a segment, stop or continue.

Only the validation score decides. A stopper never stops before ``ctx.min_step``;
the search enforces that too, so a faulty stopper cannot prune early.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from searchmgr.objective import Objective


@dataclass(frozen=True)
class Peer:
    """A comparable segment: the same depth, finished (done, or pruned where it stopped)."""

    node_id: int
    values: tuple[float, ...]  # its evaluations of the objective in step order (the same offsets as this one's)
    final: float | None  # its score at the segment's end; None when it was pruned before


@dataclass(frozen=True)
class StopContext:
    """The segment under training and what it has to beat."""

    node_id: int
    depth: int
    step: int  # global step of this evaluation
    start_step: int
    end_step: int
    min_step: int  # no stop before this global step
    objective: Objective
    trajectory: tuple[tuple[int, float], ...]  # (step, validation metric) of this segment so far
    best_at_depth: float | None  # the reference to beat: by default the best finished segment ending at end_step
    best_overall: float | None
    reference_step: int | None = None  # where the reference was reached, when not at end_step (stopper.reference)
    noise: float | None = None  # deviation of one evaluation, pooled over the tree's segments (stopper.noise)
    peers: tuple[Peer, ...] = ()  # comparable segments (stopper.reference=rank)

    @property
    def judged_at(self) -> int:
        """The step a segment's projection is compared with the reference at."""
        return self.end_step if self.reference_step is None else self.reference_step

    def to_dict(self) -> dict:
        return {
            "node": self.node_id, "depth": self.depth, "step": self.step,
            "segment": [self.start_step, self.end_step], "min_step": self.min_step,
            "metric": self.objective.metric, "direction": self.objective.direction.value,
            "trajectory": [[s, float(f"{v:.5g}")] for s, v in self.trajectory],
            "best_at_depth": self.best_at_depth, "best_overall": self.best_overall, "judged_at": self.judged_at,
        }


@dataclass(frozen=True)
class StopVerdict:
    stop: bool
    reason: str
    record: bool = False  # store this verdict as a decision even when it continues
    trace: Mapping[str, Any] = field(default_factory=dict)  # raw response, latency, prompt hash ...


CONTINUE = StopVerdict(False, "continue")


class Stopper(ABC):
    """Decides at each evaluation of one segment; the coordinator keeps one instance per training node."""

    name: ClassVar[str]

    @classmethod
    def from_config(cls, config: Any) -> "Stopper":
        """Build from the search config (:class:`searchmgr.config.SearchConfig`)."""
        return cls()

    @abstractmethod
    def should_stop(self, ctx: StopContext) -> StopVerdict:
        """Decide at one evaluation."""

    def close(self) -> None:
        """Release resources."""
