"""The knobs a :class:`~searchmgr.hf.TrainerTask` can search, and how to add your own.

An :class:`HFKnob` is a :class:`~searchmgr.surface.Knob` plus how to set it on a
running ``Trainer`` (``apply``, called at ``on_train_begin`` after the resume) and how
to read its effective value(s) back (``read``: one value per place it lives, all
of which must equal the recipe). ``args_field`` names the ``TrainingArguments``
field that also takes the value when the segment's Trainer is built.

Ready-made: :func:`learning_rate`, :func:`weight_decay`, :func:`dropout`,
:func:`label_smoothing`, :func:`warmup_ratio`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn
from transformers.trainer_pt_utils import LabelSmoother

from searchmgr.hf.callback import DROPOUT_MODULES
from searchmgr.surface import Knob, Role, Scale


@dataclass(frozen=True)
class TrainerParts:
    """What a knob may touch: the Trainer, its model, optimizer and LR scheduler (after the resume)."""

    trainer: Any
    model: nn.Module
    optimizer: Any
    lr_scheduler: Any


@dataclass(frozen=True)
class HFKnob:
    knob: Knob
    apply: Callable[[TrainerParts, float], None]
    read: Callable[[TrainerParts], list[float]]
    args_field: str | None = None


def _lambda_factor(scheduler: Any, i: int) -> float:
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is None:
        raise TypeError(f"the learning_rate knob needs a LambdaLR-based scheduler (the Trainer's built-in "
                        f"lr_scheduler_type values); got {type(scheduler).__name__}")
    return float(lambdas[i](scheduler.last_epoch))


def learning_rate(low: float, high: float, max_step: float = 1.0) -> HFKnob:
    """The peak learning rate: every param group's ``initial_lr``, the scheduler's ``base_lrs`` and the
    current ``lr`` (base times the scheduler's factor at this step)."""

    def apply(p: TrainerParts, v: float) -> None:
        sched = p.lr_scheduler
        for i, g in enumerate(p.optimizer.param_groups):
            g["initial_lr"] = v
            g["lr"] = v * _lambda_factor(sched, i)
        sched.base_lrs = [v] * len(p.optimizer.param_groups)
        sched._last_lr = [g["lr"] for g in p.optimizer.param_groups]

    def read(p: TrainerParts) -> list[float]:
        groups = p.optimizer.param_groups
        return ([float(b) for b in p.lr_scheduler.base_lrs] + [float(g["initial_lr"]) for g in groups]
                + [float(g["lr"]) / f for i, g in enumerate(groups) if (f := _lambda_factor(p.lr_scheduler, i))])

    return HFKnob(Knob("learning_rate", low, high, Scale.LOG, max_step, Role.OPTIMIZER,
                       "peak learning rate of the Trainer's scheduler (its warmup and decay shape stay)"),
                  apply, read, "learning_rate")


def _decayed(p: TrainerParts) -> list[bool]:
    """Which param groups the Trainer decays: those holding its decay parameters (not biases, norms)."""
    names = set(p.trainer.get_decay_parameter_names(p.model))
    by_id = {id(t): n for n, t in p.model.named_parameters()}
    return [bool(g["params"]) and all(by_id.get(id(t)) in names for t in g["params"]) for g in p.optimizer.param_groups]


def weight_decay(low: float, high: float, max_step: float = 0.2) -> HFKnob:
    """AdamW decoupled weight decay on the groups the Trainer decays (the others stay at 0)."""

    def apply(p: TrainerParts, v: float) -> None:
        for g, decayed in zip(p.optimizer.param_groups, _decayed(p)):
            g["weight_decay"] = v if decayed else 0.0

    def read(p: TrainerParts) -> list[float]:
        return [float(g["weight_decay"]) for g, d in zip(p.optimizer.param_groups, _decayed(p)) if d]

    return HFKnob(Knob("weight_decay", low, high, Scale.LINEAR, max_step, Role.REGULARIZATION,
                       "AdamW weight decay of the weight matrices (biases and norms are never decayed)"),
                  apply, read, "weight_decay")


def dropout(low: float, high: float, max_step: float = 0.2, *, modules: str = ".*", name: str = "dropout") -> HFKnob:
    """``p`` of the model's dropout modules whose qualified name matches the regex ``modules``."""
    pattern = re.compile(modules)

    def targets(p: TrainerParts) -> list[nn.Module]:
        found = [m for n, m in p.model.named_modules() if isinstance(m, DROPOUT_MODULES) and pattern.search(n)]
        if not found:
            raise ValueError(f"knob {name}: no dropout module of {type(p.model).__name__} matches {modules!r}")
        return found

    def apply(p: TrainerParts, v: float) -> None:
        for m in targets(p):
            m.p = v

    return HFKnob(Knob(name, low, high, Scale.LINEAR, max_step, Role.REGULARIZATION,
                       f"dropout probability of the model's dropout modules matching {modules!r}"),
                  apply, lambda p: [float(m.p) for m in targets(p)])


def label_smoothing(low: float, high: float, max_step: float = 0.2) -> HFKnob:
    """The Trainer's ``label_smoothing_factor`` (its ``LabelSmoother``; none at 0)."""

    def apply(p: TrainerParts, v: float) -> None:
        p.trainer.label_smoother = LabelSmoother(epsilon=v) if v else None

    def read(p: TrainerParts) -> list[float]:
        s = p.trainer.label_smoother
        return [0.0 if s is None else float(s.epsilon)]

    return HFKnob(Knob("label_smoothing_factor", low, high, Scale.LINEAR, max_step, Role.REGULARIZATION,
                       "label smoothing of the cross-entropy targets"), apply, read, "label_smoothing_factor")


def warmup_ratio(low: float, high: float, max_step: float = 0.5) -> HFKnob:
    """Linear warmup length as a fraction of the schedule's horizon (``TrainingArguments.warmup_steps`` < 1).

    The Trainer builds its scheduler from the arguments, so the knob acts through
    ``args_field``; ``read`` returns the warmup the scheduler runs, as a ratio."""
    if not 0 <= low < high < 1:
        raise ValueError(f"warmup_ratio bounds must lie in [0, 1): got [{low}, {high}]")

    def read(p: TrainerParts) -> list[float]:
        steps = p.trainer.args.get_warmup_steps(p.trainer.args.max_steps)
        kw = [getattr(f, "keywords", {}).get("num_warmup_steps") for f in getattr(p.lr_scheduler, "lr_lambdas", [])]
        if not kw or any(k != steps for k in kw):
            raise TypeError(f"cannot read the warmup back from {type(p.lr_scheduler).__name__} (found {kw})")
        return [float(p.trainer.args.warmup_steps)]

    return HFKnob(Knob("warmup_ratio", low, high, Scale.LINEAR, max_step, Role.OPTIMIZER,
                       "fraction of the horizon over which the learning rate warms up linearly"),
                  lambda p, v: None, read, "warmup_steps")
