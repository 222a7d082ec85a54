"""Task registry: task name -> implementing class, imported lazily.

Heavy dependencies (torch models, trl, gymnasium) load only when a task is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from searchmgr.sanitize import shorten
from searchmgr.tasks.base import (
    Direction,
    Family,
    Objective,
    OnEval,
    Segment,
    SegmentResult,
    SearchDefaults,
    Task,
    TaskOptions,
)

REGISTRY: dict[str, str] = {
    "toy": "searchmgr.tasks.toy:ToyTask",
    "tinystories_overfit": "searchmgr.tasks.tinystories:TinyStoriesOverfit",
    "tinystories_aux": "searchmgr.tasks.tinystories_aux:TinyStoriesAux",
    "arm_scared": "searchmgr.tasks.arm:ArmScared",
    "arm_reckless": "searchmgr.tasks.arm:ArmReckless",
    "grpo_arith": "searchmgr.tasks.grpo_arith:GrpoArith",
}


class UnknownTask(KeyError):
    def __str__(self) -> str:
        return f"unknown task {shorten(self.args[0])}; choose one of {available()}"


class TaskOptionsError(ValueError):
    """Options that the task's options model refuses."""


def available() -> list[str]:
    """Registered task names whose module is present in this installation."""
    out = []
    for name, target in REGISTRY.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def task_class(name: str) -> type[Task]:
    if name not in available():
        raise UnknownTask(name)
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """Instantiate task ``name`` with validated ``options`` (``preset`` and task fields)."""
    cls = task_class(name)
    try:
        opts = cls.Options(**(options or {}))
    except ValidationError as e:
        fields = sorted(cls.Options.model_fields)
        raise TaskOptionsError(f"bad options for task {name}: {_errors(e)}; its options are {fields}") from None
    try:
        return cls(opts)
    except ValueError as e:
        raise TaskOptionsError(str(e)) from None


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors())


__all__ = [
    "Direction", "Family", "Objective", "OnEval", "Segment", "SegmentResult", "SearchDefaults",
    "Task", "TaskOptions", "UnknownTask", "TaskOptionsError", "available", "task_class", "make_task",
]
