"""Executors train segments and report what happens; the coordinator consumes it, executors never touch the tree.

A :class:`Job` names everything a worker needs by value or by path: the task (by its
reference and options, rebuilt once per worker), the recipe, the step range, the
parent's checkpoint file and sha256, and where to write the new checkpoint. Workers
load and save checkpoints themselves, so the coordinator never holds one in memory and
nothing large crosses a process boundary or Ray's object store.

The contract (:class:`Executor`): the coordinator submits jobs (:meth:`~Executor.submit`, at
most ``capacity`` at once) and, in its own loop, takes their events
(:mod:`searchmgr.executors.events`) from :meth:`~Executor.events`: every evaluation
(:class:`Evaluated`), every job's end (:class:`Ended`, with its :class:`Trained`
result) and every worker that died (:class:`Died`). It alone writes the store and
finishes every node through ``tell``. When the stopper prunes a segment (or a signal
stops the run) it says so with :meth:`~Executor.stop`: the inline executor's segment
waits at each evaluation until the coordinator has taken that event and stops right
there; process and Ray workers report without waiting and are stopped afterwards (a
stop flag at their next evaluation, ``ray.cancel``), so a busy coordinator never
stalls training. The coordinator records a pruned node at the evaluation where the
stopper decided, whatever the worker did after.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from searchmgr.errors import UserError
from searchmgr.executors.events import Event, Trained
from searchmgr.store import CheckpointCorrupt, DiskFull, load_checkpoint, save_checkpoint
from searchmgr.tasks import Segment, Task
from searchmgr.tasks.contract import TaskContractError


@dataclass(frozen=True)
class TaskSpec:
    """How a worker rebuilds the task: its registered name (or plug-in reference) and validated options."""

    ref: str
    options: Mapping[str, Any]

    def build(self) -> Task:
        from searchmgr.tasks import load_task

        return load_task(self.ref, dict(self.options))  # checked: a contract breach stops the search

    def key(self) -> tuple:
        """What a worker caches the built task under (options by value: two equal specs build one task)."""
        return self.ref, tuple(sorted((k, repr(v)) for k, v in self.options.items()))


@dataclass(frozen=True)
class Job:
    node_id: int
    task: TaskSpec
    recipe: Mapping[str, float]
    segment: Segment
    parent_checkpoint: Path
    parent_sha256: str
    checkpoint: Path  # where a finished segment's checkpoint goes
    threads: int | None = None  # torch threads in the worker (None: leave torch's default)


def run_job(job: Job, task: Task, on_eval) -> Trained:
    """Load the parent, train the segment, save a finished segment's checkpoint. Exceptions of the task
    become a failed result (with its traceback); the seconds spent in ``on_eval`` are not training time."""
    callback_s = 0.0

    def timed(step: int, metrics: dict[str, float]) -> bool:
        nonlocal callback_s
        t0 = time.perf_counter()
        try:
            return bool(on_eval(step, metrics))
        finally:
            callback_s += time.perf_counter() - t0

    t0 = time.perf_counter()
    try:
        state = load_checkpoint(job.parent_checkpoint, job.parent_sha256)
    except CheckpointCorrupt as e:
        return Trained(job.node_id, error=f"CheckpointCorrupt: {e}", parent_damaged=str(e))
    try:
        result = task.train_segment(state, dict(job.recipe), job.segment, timed)
        del state
        sha = None
        if not result.stopped and result.checkpoint is not None:
            sha = save_checkpoint(result.checkpoint, job.checkpoint)
    except DiskFull as e:  # not the segment's fault: it is retrained once space is freed
        return Trained(job.node_id, interrupted=True, error=str(e), disk_full=True)
    except Exception as e:  # a crashing segment fails its node, loudly; the search goes on
        return Trained(job.node_id, train_s=time.perf_counter() - t0 - callback_s,
                       error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                       broke_contract=isinstance(e, TaskContractError))
    return Trained(job.node_id, result.steps_done, dict(result.metrics), result.stopped, sha,
                   time.perf_counter() - t0 - callback_s)


class Executor(ABC):
    """Runs jobs; ``capacity`` of them at once."""

    name: ClassVar[str]
    capacity: int = 1

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Start (or queue) a job; at most ``capacity`` are submitted at once."""

    @abstractmethod
    def events(self) -> list[Event]:
        """Block until something happened to a submitted job; every event since the last call, in order."""

    @abstractmethod
    def stop(self, node_id: int) -> None:
        """Stop that segment at its next evaluation (its stopper pruned it, or the run stops); a segment
        that already ended, or was already stopped, is left alone."""

    def close(self) -> None:
        """Stop workers and release resources."""


class ExecutorUnavailable(UserError, RuntimeError):
    """The executor cannot run here (a missing optional dependency); the message says what to install."""
