"""Hugging Face ``Trainer`` integration.

* :class:`ScheduleCallback` replays an exported schedule inside a ``Trainer`` (:mod:`searchmgr.hf.callback`);
* :class:`TrainerTask` searches over a ``Trainer`` a user already has (:mod:`searchmgr.hf.trainer_task`).
"""

from searchmgr.hf.callback import DROPOUT_MODULES, ScheduleCallback
from searchmgr.hf.trainer_task import TrainerTask

__all__ = ["DROPOUT_MODULES", "ScheduleCallback", "TrainerTask"]
