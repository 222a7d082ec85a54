"""Executors: where segments train (``inline``, ``process``, ``ray``), looked up by name."""

from __future__ import annotations

from searchmgr.executors.base import Executor, ExecutorUnavailable, Job, TaskSpec, run_job
from searchmgr.executors.events import Died, Ended, Evaluated, Event, Trained
from searchmgr.registry import Registry

REGISTRY = Registry("executor", {
    "inline": "searchmgr.executors.inline:InlineExecutor",
    "process": "searchmgr.executors.process:ProcessExecutor",
    "ray": "searchmgr.executors.ray:RayExecutor",
})


def executor_names() -> list[str]:
    return REGISTRY.names()


def make_executor(config, task) -> Executor:
    """The executor ``config.executor`` names, for ``task`` (the inline executor trains this very instance)."""
    e = config.executor
    cls = REGISTRY.get(e.name)
    if e.name == "inline":
        return cls(task)
    if e.name == "process":
        return cls(e.workers, e.gpus_per_worker)
    return cls(e.workers, e.gpus_per_worker, e.address, config.threads)


__all__ = ["Died", "Ended", "Evaluated", "Event", "Executor", "ExecutorUnavailable", "Job", "TaskSpec", "Trained",
           "run_job", "REGISTRY",
           "executor_names", "make_executor"]
