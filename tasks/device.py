"""The ``device=`` task option: where a task trains (checkpoints are always loaded on the CPU).

The store loads every checkpoint with ``map_location="cpu"``; a task moves what it
loads to its device (``model.to(device)`` before ``load_state_dict``, or
``load_state_dict`` into a model already there). A task with a ``device`` option
derives its options from :class:`DeviceOptions`. With ``executor.name=process`` and
``executor.gpus_per_worker=1`` each worker process sees only its own GPU, so
``device=cuda`` means that worker's GPU.
"""

from __future__ import annotations

import re

import torch
from pydantic import Field, field_validator

from searchmgr.tasks.base import TaskOptions

DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")


def check_device(value: str) -> str:
    """``value`` if this machine has that device; else a ValueError that says what is there and what to do."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {value!r}")
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            why = ("this torch is a CPU build" if torch.version.cuda is None
                   else "torch sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)")
            raise ValueError(f"device={value} was asked but {why}; use device=cpu, or run on a machine with a GPU "
                             "and a CUDA build of torch")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={value} was asked but only {torch.cuda.device_count()} CUDA GPU(s) are "
                             "visible; use cuda:0 .. cuda:N-1 (under executor.gpus_per_worker each worker sees "
                             "one GPU, cuda:0)")
    if value == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device=mps was asked but MPS is not available here; use device=cpu")
    return value


class DeviceOptions(TaskOptions):
    """Task options with a validated ``device`` (default ``cpu``)."""

    device: str = Field("cpu", description="torch device: cpu, cuda or cuda:N (checked against this machine)")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        return check_device(value)


__all__ = ["DEVICE_PATTERN", "DeviceOptions", "check_device"]
