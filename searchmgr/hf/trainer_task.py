"""TrainerTask: search over the Hugging Face ``Trainer`` a user already has.

    from searchmgr.hf import TrainerTask, knobs

    task = TrainerTask(
        name="my_gpt2", model_init=lambda: GPT2LMHeadModel(config), args=TrainingArguments(...),
        train_dataset=train, eval_dataset=val, test_dataset=test, data_collator=collator,
        knobs=[knobs.learning_rate(1e-4, 3e-3), knobs.weight_decay(0.0, 0.3), knobs.dropout(0.0, 0.3)],
        base_recipe={"learning_rate": 1e-3, "weight_decay": 0.0, "dropout": 0.0},
        search_defaults=SearchDefaults(segment_steps=200, max_depth=4, budget_steps=4000, eval_every=50))

Each segment, in order:

1. builds a ``Trainer`` from ``model_init``, the user's ``TrainingArguments`` (with
   ``max_steps`` = the schedule's horizon, so step-dependent schedulers see the whole
   schedule, and the recipe's values in the arguments the knobs name) and the
   datasets, and resumes the parent's Trainer checkpoint (model, optimizer,
   scheduler, RNG, data position; the checkpoint folder travels inside the search's
   checkpoint dict as ``{"files": {name: bytes}}``);
2. applies the recipe at ``on_train_begin``, after the Trainer restored the parent's
   optimizer and scheduler: HF's resume otherwise silently keeps the parent's
   learning rates and weight decays (transformers#23099, ray#62173);
3. trains to ``segment.end_step``, evaluating every ``eval_every`` steps through the
   Trainer (``eval_*`` -> ``val/*``, the last ``loss`` log -> ``train/loss``);
4. at the end saves the Trainer checkpoint and evaluates the test split (``test/*``);
5. reads every knob's effective value back at each evaluation (``hp/<knob>``) and
   fails the node with :class:`HyperparameterMismatch` when one differs from the recipe.

The search's early stopper acts through :class:`_SegmentCallback`, which sets
``control.should_training_stop`` when ``on_eval`` says stop.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

from searchmgr.errors import UserError
from searchmgr.hf.knobs import HFKnob, TrainerParts
from searchmgr.surface import ActionSurface, Recipe
from searchmgr.tasks.base import (
    Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task, TaskOptions,
)

UNTIMED = ("runtime", "per_second", "epoch")  # eval_* keys that measure the machine, not the model


class HyperparameterMismatch(UserError, RuntimeError):
    """A knob whose effective value in the Trainer differs from the node's recipe."""


def _renamed(prefix: str, metrics: Mapping[str, float], ns: str) -> dict[str, float]:
    """``eval_loss`` -> ``val/loss`` (``prefix='eval_'``, ``ns='val'``), without the timing keys."""
    return {f"{ns}/{k[len(prefix):]}": float(v) for k, v in metrics.items()
            if k.startswith(prefix) and isinstance(v, (int, float)) and not any(u in k for u in UNTIMED)}


class _SegmentCallback(TrainerCallback):
    """Applies the recipe after the resume, triggers evaluations, reports them and stops the segment."""

    def __init__(self, task: "TrainerTask", recipe: Recipe, segment: Segment, on_eval: OnEval):
        self.task, self.recipe, self.segment, self.on_eval = task, recipe, segment, on_eval
        self.trainer: Trainer | None = None
        self.train_log: dict[str, float] = {}
        self.last: dict[str, float] = {}  # the last evaluation (the end step's waits for the test split)
        self.stopped_at: int | None = None

    def parts(self) -> TrainerParts:
        t = self.trainer
        return TrainerParts(t, t.model, t.optimizer, t.lr_scheduler)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step != self.segment.start_step:
            raise RuntimeError(f"the Trainer resumed at step {state.global_step}, not at the segment's start "
                               f"{self.segment.start_step}; the parent's checkpoint does not match its node")
        parts = self.parts()
        for k in self.task.hf_knobs:
            k.apply(parts, self.recipe[k.knob.name])

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self.segment.start_step
        if done % self.segment.eval_every == 0 or state.global_step >= self.segment.end_step:
            control.should_log = control.should_evaluate = True
        if state.global_step >= self.segment.end_step:
            control.should_save = control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.train_log = {"train/loss": float(logs["loss"])}
            if "learning_rate" in logs:
                self.train_log["train/learning_rate"] = float(logs["learning_rate"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics is None or not any(k.startswith("eval_") for k in metrics):
            return control  # the test split, evaluated after training
        self.last = {**self.train_log, **_renamed("eval_", metrics, "val"), **self.task.effective(self.parts(),
                                                                                                       self.recipe)}
        if state.global_step < self.segment.end_step and self.on_eval(state.global_step, self.last):
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control


class TrainerTaskOptions(TaskOptions):
    """A TrainerTask is built in code; only the preset name is an option."""


class TrainerTask(Task):
    """A search task over a Hugging Face ``Trainer`` (see the module docstring)."""

    Options = TrainerTaskOptions

    def __init__(self, *, name: str, model_init: Callable[[], torch.nn.Module], args: TrainingArguments,
                 train_dataset: Any, eval_dataset: Any, test_dataset: Any, knobs: Sequence[HFKnob],
                 base_recipe: Mapping[str, float], search_defaults: SearchDefaults,
                 objective: Objective = Objective("val/loss", Direction.MINIMIZE, "test/loss"),
                 description: str = "", family: Family = Family.SUPERVISED, data_collator: Any = None,
                 processing_class: Any = None, compute_metrics: Callable | None = None,
                 options: TaskOptions | None = None):
        super().__init__(options)
        if not callable(model_init):
            raise ValueError("model_init must be a zero-argument callable returning a fresh model")
        self.name, self.family, self.objective = name, family, objective
        self.description = description or (f"A model trained by a Hugging Face Trainer; goal: "
                                           f"{objective.direction.value} {objective.metric} at the end of the schedule")
        self.model_init, self.args = model_init, args
        self.datasets = {"train": train_dataset, "eval": eval_dataset, "test": test_dataset}
        self.hf_knobs = tuple(knobs)
        self._surface = ActionSurface(tuple(k.knob for k in self.hf_knobs))
        self._base = dict(base_recipe)
        self._defaults = search_defaults
        self.data_collator, self.processing_class = data_collator, processing_class
        self.compute_metrics = compute_metrics
        fields = {f.name for f in dataclasses.fields(TrainingArguments)}
        bad = [k.args_field for k in self.hf_knobs if k.args_field and k.args_field not in fields]
        if bad:
            raise ValueError(f"knobs name TrainingArguments fields {bad} that do not exist in this transformers")

    @property
    def surface(self) -> ActionSurface:
        return self._surface

    def base_recipe(self) -> Recipe:
        return dict(self._base)

    def search_defaults(self) -> SearchDefaults:
        return self._defaults

    def info(self) -> dict[str, Any]:
        return {f"{split}_examples": len(d) for split, d in self.datasets.items() if hasattr(d, "__len__")}

    # -- the Trainer -------------------------------------------------------------------
    def _arguments(self, out: str, seed: int, recipe: Recipe, segment: Segment) -> TrainingArguments:
        values = {k.args_field: recipe[k.knob.name] for k in self.hf_knobs if k.args_field}
        return dataclasses.replace(
            self.args, output_dir=out, max_steps=segment.horizon, seed=seed, eval_strategy="no",
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            load_best_model_at_end=False, save_only_model=False, **values)

    def _trainer(self, args: TrainingArguments, callback: _SegmentCallback) -> Trainer:
        trainer = Trainer(model_init=self.model_init, args=args, train_dataset=self.datasets["train"],
                          eval_dataset=self.datasets["eval"], data_collator=self.data_collator,
                          processing_class=self.processing_class, compute_metrics=self.compute_metrics,
                          callbacks=[callback])
        for quiet in (PrinterCallback, ProgressCallback):  # the search reports progress itself
            trainer.remove_callback(quiet)
        callback.trainer = trainer
        return trainer

    def effective(self, parts: TrainerParts, recipe: Recipe) -> dict[str, float]:
        """``hp/<knob>``: each knob's value read back from the Trainer; raises on a mismatch with ``recipe``."""
        out, wrong = {}, []
        for k in self.hf_knobs:
            values = k.read(parts)
            out[f"hp/{k.knob.name}"] = values[0]
            want = recipe[k.knob.name]
            if any(not math.isclose(v, want, rel_tol=1e-6, abs_tol=1e-12) for v in values):
                wrong.append(f"{k.knob.name}: recipe {want:g}, effective {sorted(set(values))}")
        if wrong:
            raise HyperparameterMismatch("the Trainer does not run the node's recipe: " + "; ".join(wrong))
        return out

    # -- the Task contract -------------------------------------------------------------
    def init(self, seed: int) -> dict:
        """The root: no Trainer checkpoint yet; the first segment builds the model with ``model_init``
        after seeding with ``seed``, as ``Trainer.train`` does."""
        return {"seed": seed, "step": 0, "files": None}

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        if checkpoint["step"] != segment.start_step:
            raise ValueError(f"checkpoint at step {checkpoint['step']} cannot start a segment at {segment.start_step}")
        callback = _SegmentCallback(self, recipe, segment, on_eval)
        with tempfile.TemporaryDirectory(prefix="searchmgr-trainer-") as tmp:
            # resume the parent's Trainer checkpoint (none at the root)
            resume = None
            if checkpoint["files"] is not None:
                resume = Path(tmp) / f"checkpoint-{segment.start_step}"
                for rel, data in checkpoint["files"].items():
                    (resume / rel).parent.mkdir(parents=True, exist_ok=True)
                    (resume / rel).write_bytes(data)
            out = Path(tmp) / "out"
            trainer = self._trainer(self._arguments(str(out), checkpoint["seed"], recipe, segment), callback)
            # train (the recipe is applied at on_train_begin, after the resume) and evaluate
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # "Writing model shards" at every save
            try:
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            if callback.stopped_at is not None:
                return SegmentResult(None, callback.stopped_at - segment.start_step, callback.last, stopped=True)
            step = trainer.state.global_step
            saved = out / f"checkpoint-{step}"
            if step != segment.end_step or not saved.is_dir():
                raise RuntimeError(f"the Trainer stopped at step {step} without a checkpoint at {segment.end_step}")
            files = {str(p.relative_to(saved)): p.read_bytes() for p in sorted(saved.rglob("*")) if p.is_file()}
            # the test split, after the checkpoint (its RNG use cannot change the resume)
            test = trainer.evaluate(eval_dataset=self.datasets["test"], metric_key_prefix="test")
        metrics = {**callback.last, **_renamed("test_", test, "test")}
        on_eval(step, metrics)
        return SegmentResult({"seed": checkpoint["seed"], "step": step, "files": files}, segment.steps, metrics)
