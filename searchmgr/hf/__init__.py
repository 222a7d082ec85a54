"""Hugging Face ``Trainer`` integration.

* :class:`ScheduleCallback` replays an exported schedule inside a ``Trainer`` (:mod:`searchmgr.hf.callback`);
* :class:`TrainerTask` searches over a ``Trainer`` a user already has (:mod:`searchmgr.hf.trainer_task`),
  with knobs from :mod:`searchmgr.hf.knobs`.
"""

from searchmgr.hf import knobs
from searchmgr.hf.callback import DROPOUT_MODULES, ScheduleCallback
from searchmgr.hf.knobs import HFKnob, TrainerParts
from searchmgr.hf.trainer_task import HyperparameterMismatch, TrainerTask

__all__ = ["DROPOUT_MODULES", "HFKnob", "HyperparameterMismatch", "ScheduleCallback", "TrainerParts", "TrainerTask",
           "knobs"]
