"""What a search optimises: the objective (metric, direction, test twin, tie-break) and task families.

These are engine notions; :mod:`searchmgr.tasks` re-exports them for task authors.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Mapping


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
