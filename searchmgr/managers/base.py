"""The manager interface: propose the next child of a chosen parent from its context.

A manager answers with a *raw* response (text or dict in the decision schema);
the search passes it to :func:`searchmgr.decision.verify` and never trusts it.
``feedback`` carries the verifier's reasons for earlier rejected attempts at the
same parent, so a manager can correct itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from searchmgr.errors import UserError
from searchmgr.sanitize import MAX_FIELD_CHARS, cap
from searchmgr.surface import ActionSurface
from searchmgr.objective import Family, Objective
from searchmgr.telemetry import Summary


class ManagerError(UserError, RuntimeError):
    """The manager could not answer (for example its endpoint stayed down after retries).

    The search records it in the trace and lets the fallback manager decide.
    """


def _capped(text: Any) -> Any:
    """Stored decision text as re-sent in prompts (runs stored before the caps may hold more)."""
    return cap(text, MAX_FIELD_CHARS) if isinstance(text, str) else text


@dataclass(frozen=True)
class PathStep:
    """One ancestor segment on the way from the root to the parent."""

    node_id: int
    depth: int
    start_step: int
    end_step: int
    recipe: Mapping[str, float]
    val_score: float | None
    decision: Mapping[str, Any] | None  # the parsed decision that created this node
    observed: Mapping[str, float]  # its last evaluation

    def to_dict(self) -> dict:
        return {
            "node": self.node_id, "depth": self.depth, "steps": [self.start_step, self.end_step],
            "recipe": dict(self.recipe), "val_score": self.val_score,
            "diagnosis": _capped((self.decision or {}).get("diagnosis")),
            "updates": (self.decision or {}).get("updates"),
            "expected_outcome": _capped((self.decision or {}).get("expected_outcome")),
            "observed": {k: float(f"{v:.4g}") for k, v in self.observed.items()},
        }


@dataclass(frozen=True)
class Sibling:
    """A child already tried from the same parent."""

    node_id: int
    recipe: Mapping[str, float]
    status: str
    val_score: float | None
    updates: Sequence[Mapping[str, Any]] | None

    def to_dict(self) -> dict:
        return {"node": self.node_id, "recipe": dict(self.recipe), "status": self.status,
                "val_score": self.val_score, "updates": self.updates}


@dataclass(frozen=True)
class Observation:
    """One scored segment of the run, as evidence for a model of which recipes help (``managers/model.py``)."""

    recipe: Mapping[str, float]
    progress: float  # where it was observed (its end, or where it was pruned) over the schedule's horizon
    parent_utility: float | None  # the score of the state it started from (None: the untrained root)
    utility: float | None  # the oriented score it reached; None: it diverged


@dataclass(frozen=True)
class ProposalContext:
    """Everything a manager may read about the parent it must extend."""

    task: str
    family: Family
    description: str
    objective: Objective
    surface: ActionSurface
    parent_id: int
    parent_recipe: Mapping[str, float]
    depth: int  # the child's depth
    max_depth: int
    start_step: int  # the child's step range
    end_step: int
    telemetry: Summary
    path: tuple[PathStep, ...]
    siblings: tuple[Sibling, ...]
    budget_left_steps: int
    seed: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Observation, ...] = ()  # every scored segment of the run (read by the model manager)
    parent_utility: float | None = None  # the parent's oriented score (None: the untrained root)

    def to_dict(self) -> dict:
        """The runtime context as stored in decision traces (and sent to LLMs)."""
        return {
            "task": self.task, "family": self.family.value,
            "objective": {"metric": self.objective.metric, "direction": self.objective.direction.value},
            "parent": {"node": self.parent_id, "recipe": dict(self.parent_recipe)},
            "child": {"depth": self.depth, "max_depth": self.max_depth, "steps": [self.start_step, self.end_step]},
            "telemetry": self.telemetry.to_dict(),
            "path": [p.to_dict() for p in self.path],
            "siblings": [s.to_dict() for s in self.siblings],
            "budget_left_steps": self.budget_left_steps,
        }


@dataclass(frozen=True)
class Proposal:
    """A manager's raw answer plus what the trace should record about the request."""

    raw: str | Mapping[str, Any]
    source: str
    prompt_version: str | None = None
    prompt_hash: str | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    request: Mapping[str, Any] | None = None  # what was sent, when it differs from the context


class Manager(ABC):
    """Proposes child recipes. Implementations: ``heuristic``, ``random`` (and LLM backends)."""

    name: ClassVar[str]
    slow: ClassVar[bool] = False  # answers take seconds (LLMs): the coordinator asks ahead while segments train

    @classmethod
    def from_config(cls, config: Any) -> "Manager":
        """Build from the search config (:class:`searchmgr.config.SearchConfig`)."""
        return cls()

    @abstractmethod
    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        """Answer with a decision for a new child of ``ctx.parent_id``."""

    def close(self) -> None:
        """Release resources (threads, connections)."""
