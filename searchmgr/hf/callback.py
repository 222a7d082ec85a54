"""Use a discovered schedule in Hugging Face ``Trainer`` training: :class:`ScheduleCallback`.

    from transformers import Trainer, TrainingArguments
    from searchmgr.hf import ScheduleCallback
    from searchmgr.schedule import Schedule

    schedule = Schedule.load("schedule.json")
    args = TrainingArguments(..., lr_scheduler_type="constant", weight_decay=0.01)
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[ScheduleCallback(schedule)])
    trainer.train()

Knob names understood (others in the schedule are ignored, with one warning):

* learning rate: ``lr``, ``learning_rate``
* weight decay: ``weight_decay``, ``wd``
* dropout: ``dropout``, ``dropout_p``, ``dropout_rate``

``knob_map`` renames more knobs onto these three (``{"actor_lr": "lr"}``).

When it acts
------------
At ``on_step_begin`` of optimizer step ``s`` (``state.global_step`` before the step,
0-based: the ``s``-th update) the callback looks up ``schedule.recipe_at(int(s *
step_scale))`` and applies it before that step's forward pass, so the forward,
backward and optimizer update of step ``s`` all run under the schedule's recipe
for ``s`` — the same convention as the search's tasks, where the recipe of the
segment ``[start, end)`` governs updates ``start .. end-1``. ``step_scale`` stretches
or squeezes the schedule (``schedule.horizon / max_steps`` plays it once over your
run); after the horizon the last segment's recipe stays in force.

What it sets
------------
* **Learning rate** on every optimizer param group. The Trainer's own LR
  scheduler still steps after every update and rewrites ``lr`` from its base rate;
  the callback overwrites it again before the next update, so:

  - ``lr_mode="absolute"`` (default): the schedule's value *is* the learning rate;
    the Trainer's scheduler is overridden. Use ``lr_scheduler_type="constant"``
    (``"constant_with_warmup"`` warmup would also be overridden);
  - ``lr_mode="scale"``: the schedule's value is a peak rate multiplied by the
    Trainer scheduler's current factor ``get_last_lr() / base_lrs`` (warmup,
    cosine …), which keeps the Trainer's shape. The search's ``toy`` and
    ``tinystories_overfit`` tasks use their ``lr`` knob this way (a cosine times
    the knob), so ``"scale"`` with a cosine scheduler is the faithful reuse there.

  The Trainer logs ``learning_rate`` from its scheduler (``get_last_lr()``), which
  is *not* what the callback applied; read :attr:`ScheduleCallback.switches` for
  the applied values. Schedulers that read back the group's ``lr`` (chainable
  torch schedulers) compound with the override; use LambdaLR-based ones (all of
  the Trainer's built-in names).
* **Weight decay** on the *decayed* param groups only: a group is decayed if its
  ``weight_decay`` is non-zero when training starts, or, when every group starts
  at 0 (``weight_decay=0`` in the arguments), if it holds a parameter with two or
  more dimensions — the Trainer's default split (biases and norm weights are
  never decayed). ``decay_groups`` lists group indices to decide it yourself.
* **Dropout**: ``p`` of every torch dropout module in the model, and any float
  ``attention_dropout`` attribute (Llama-style attention reads that instead of a
  module). Dropout that a model reads from ``model.config`` at forward time is not
  changed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from torch import nn
from transformers import TrainerCallback

from searchmgr.schedule import Schedule

logger = logging.getLogger(__name__)

ALIASES = {"lr": "lr", "learning_rate": "lr", "weight_decay": "weight_decay", "wd": "weight_decay",
           "dropout": "dropout", "dropout_p": "dropout", "dropout_rate": "dropout"}
DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class ScheduleCallback(TrainerCallback):
    """Apply a schedule's learning rate, weight decay and dropout at the right steps (see the module docstring)."""

    def __init__(self, schedule: Schedule | str | Path, *, lr_mode: Literal["absolute", "scale"] = "absolute",
                 step_scale: float = 1.0, knob_map: Mapping[str, str] | None = None,
                 decay_groups: Sequence[int] | None = None):
        if lr_mode not in ("absolute", "scale"):
            raise ValueError(f"lr_mode must be 'absolute' or 'scale', not {lr_mode!r}")
        if step_scale <= 0:
            raise ValueError(f"step_scale must be positive, not {step_scale}")
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule.load(schedule)
        self.lr_mode = lr_mode
        self.step_scale = step_scale
        aliases = dict(ALIASES)
        for name, target in (knob_map or {}).items():
            if target not in ("lr", "weight_decay", "dropout"):
                raise ValueError(f"knob_map[{name!r}] = {target!r}; map onto 'lr', 'weight_decay' or 'dropout'")
            aliases[name] = target
        knobs = set(self.schedule.segments[0].recipe) if self.schedule.segments else set()
        self.mapping = {k: aliases[k] for k in sorted(knobs) if k in aliases}  # schedule knob -> lr/wd/dropout
        targets = list(self.mapping.values())
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise ValueError(f"several schedule knobs map onto {dup}: {self.mapping}; pass knob_map to choose")
        self.ignored = sorted(knobs - set(self.mapping))
        self._decay_groups = None if decay_groups is None else set(decay_groups)
        self.applied: dict[str, float] = {}
        self.switches: list[tuple[int, dict[str, float]]] = []  # (global step, values) whenever a value changed

    # -- helpers -------------------------------------------------------------------
    def values_at(self, global_step: int) -> dict[str, float]:
        """``{"lr"|"weight_decay"|"dropout": value}`` from the schedule at this optimizer step."""
        recipe = self.schedule.recipe_at(int(global_step * self.step_scale))
        return {target: float(recipe[name]) for name, target in self.mapping.items()}

    def _decayed(self, optimizer: Any) -> set[int]:
        if self._decay_groups is None:
            groups = optimizer.param_groups
            if any(g.get("weight_decay", 0.0) for g in groups):
                self._decay_groups = {i for i, g in enumerate(groups) if g.get("weight_decay", 0.0)}
            else:
                self._decay_groups = {i for i, g in enumerate(groups) if any(p.dim() >= 2 for p in g["params"])}
        return self._decay_groups

    def apply(self, global_step: int, model: nn.Module | None, optimizer: Any, lr_scheduler: Any = None) -> dict:
        """Set the recipe of ``global_step`` on ``optimizer`` and ``model``; returns what was applied."""
        values = self.values_at(global_step)
        applied: dict[str, float] = {}
        if optimizer is not None and "lr" in values:
            factors = [1.0] * len(optimizer.param_groups)
            if self.lr_mode == "scale":
                if lr_scheduler is None:
                    raise RuntimeError("lr_mode='scale' needs the Trainer's lr_scheduler")
                last, base = lr_scheduler.get_last_lr(), lr_scheduler.base_lrs
                factors = [float(lr) / b if b else 1.0 for lr, b in zip(last, base)]
            for g, f in zip(optimizer.param_groups, factors):
                g["lr"] = values["lr"] * f
            applied["lr"] = values["lr"] * factors[0]
        if optimizer is not None and "weight_decay" in values:
            decayed = self._decayed(optimizer)
            for i, g in enumerate(optimizer.param_groups):
                g["weight_decay"] = values["weight_decay"] if i in decayed else 0.0
            applied["weight_decay"] = values["weight_decay"]
        if model is not None and "dropout" in values:
            p = values["dropout"]
            for m in model.modules():
                if isinstance(m, DROPOUT_MODULES):
                    m.p = p
                if isinstance(getattr(m, "attention_dropout", None), float):
                    m.attention_dropout = p
            applied["dropout"] = p
        if applied != self.applied:
            self.switches.append((global_step, dict(applied)))
            self.applied = applied
        return applied

    # -- Trainer events ----------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if self.ignored:
            logger.warning("ScheduleCallback ignores schedule knobs %s (it applies %s; see knob_map)", self.ignored,
                           self.mapping or "nothing")
        self.apply(state.global_step, kwargs.get("model"), kwargs.get("optimizer"), kwargs.get("lr_scheduler"))

    def on_step_begin(self, args, state, control, **kwargs):
        self.apply(state.global_step, kwargs.get("model"), kwargs.get("optimizer"), kwargs.get("lr_scheduler"))
