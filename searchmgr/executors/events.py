"""What an executor reports to the coordinator about the jobs it was given, in the order it happened.

* :class:`Evaluated`: a segment in training evaluated (its step and metrics); the coordinator
  records it and asks the segment's stopper, and a prune goes back as :meth:`Executor.stop`.
* :class:`Ended`: a segment's job ended, with its :class:`Trained` result (finished, stopped,
  failed, or interrupted when its checkpoint could not be written).
* :class:`Died`: the worker died or the job was cancelled before it ended; the node is retried.

Every event is a small frozen value: executors never touch the tree, and every node
finishes through :meth:`searchmgr.coordinator.Coordinator.tell`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union


@dataclass(frozen=True)
class Trained:
    """What came back for one job. ``interrupted``: the worker died or was cancelled before it ended."""

    node_id: int
    steps_done: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    stopped: bool = False
    checkpoint_sha256: str | None = None
    train_s: float = 0.0
    error: str | None = None
    traceback: str | None = None
    interrupted: bool = False
    parent_damaged: str | None = None  # the parent's checkpoint is missing or corrupt (why)
    broke_contract: bool = False  # the error is the task's TaskContractError: the search stops
    disk_full: bool = False  # its checkpoint could not be written (``error`` says where): the search stops, resumable


@dataclass(frozen=True)
class Evaluated:
    """One evaluation of a segment in training."""

    node_id: int
    step: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Ended:
    """A segment's job ended; ``trained`` says how."""

    trained: Trained

    @property
    def node_id(self) -> int:
        return self.trained.node_id


@dataclass(frozen=True)
class Died:
    """The job's worker died (killed, out of memory) or the job could not run: its node is retried."""

    node_id: int
    error: str

    @property
    def trained(self) -> Trained:
        """The job's end as the coordinator tells it: interrupted."""
        return Trained(self.node_id, interrupted=True, error=self.error)


Event = Union[Evaluated, Ended, Died]
