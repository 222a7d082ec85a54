"""grpo_arith: GRPO post-training (trl's ``GRPOTrainer``) of a small LM on verifiable arithmetic.

The LLMZero setting at a scale a CPU can run. A policy answers problems such as
``47-85=`` (zero-padded to a fixed width) with an integer and an end token; two
reward functions score each completion: ``correctness_reward`` (1 for the exact
answer) and ``format_reward`` (1 for a single integer that ends with the end
token, weighted 0.25). The search objective is greedy-decoding accuracy on a fixed
validation set (``val/accuracy``); a disjoint test set is reported at the end of
each segment. ``*/accuracy_unsigned`` ignores the sign of the answer.

Offline by default: a small GPT-2 built from a ``transformers`` config and a
character tokenizer built here, first brought to a non-trivial accuracy by a
supervised warm-up that is cached on disk (``_arith.py``). The warm-up data carry a
systematic sign slip (in 80% of subtractions the target is ``b - a``), so the
warmed-up model computes magnitudes but often writes the wrong sign: GRPO has to
elicit the right rule from the reward, the regime in which it works on language
models (a tiny model cannot learn arithmetic itself from a binary reward within a
CPU budget). The warm-up model is also trl's reference model for the KL term.
``model=`` takes any causal LM path or hub name instead (with a GPU; it gets the
same warm-up, and learning rates on the usual LLM scale).

Knobs (applied at segment boundaries; each segment builds a fresh ``GRPOTrainer``
from the parent's checkpoint): ``lr`` (optimizer), ``beta`` (KL to the warm-up
model; regularization), ``temperature`` (sampling; exploration), ``epsilon``
(clipping of the policy ratio; regularization), ``max_completion_length`` and
``num_generations`` (capacity). Every optimizer step trains on a fixed number of
completions (the preset's ``batch``); trl requires ``num_generations >= 2`` and
that it divides that batch, and the action surface's constraint rejects anything
else with the valid choices. Each generation round is reused for
``num_iterations`` optimizer steps (trl's mu = 2), so the policy ratio moves away
from 1 and ``epsilon`` matters.

Learning-rate schedule: constant within a segment (the recipe's ``lr``), as in most
GRPO recipes; a schedule is what the search discovers across segments.

Resuming is exact: the checkpoint holds the model, the AdamW state, the global
step, the run's seed (the training prompts are a pure function of seed and step),
the RNG states, and trl's buffered generation round when a segment ends inside
one. Two segments of N steps give the same parameters as one of 2N.

Presets: ``smoke`` (tests, seconds), ``default`` (two-digit problems, minutes on a
CPU; the first use spends a few minutes on the cached warm-up), ``gpu`` (four-digit
problems, a 6x256 GPT-2 or ``model=``, batches of 256 completions).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import warnings
import random
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from searchmgr.surface import ActionSurface, Constraint, ConstraintKind, Knob, Recipe, Role, Scale
from searchmgr.tasks._arith import (
    WarmupSpec, correctness_reward, format_reward, greedy_scores, held_out_sets, random_problem, train_problem,
    warm_start,
)
from searchmgr.tasks.base import (
    Direction, Family, Objective, OnEval, SearchDefaults, Segment, SegmentResult, Task, TaskOptions,
)
from searchmgr.tasks.device import check_device

FORMAT_WEIGHT = 0.25  # weight of format_reward (correctness has weight 1); a power of two keeps group stds exactly 0

# trl's log keys -> our namespaced telemetry keys (averaged over the steps since the last evaluation)
TRL_KEYS = {
    "reward": "train/reward_mean",
    "reward_std": "train/reward_std",
    "rewards/correctness_reward/mean": "train/reward_correct",
    "rewards/format_reward/mean": "train/reward_format",
    "frac_reward_zero_std": "train/frac_zero_std",  # share of prompt groups whose rewards are all equal
    "kl": "train/kl",
    "entropy": "train/entropy",
    "completions/mean_length": "train/completion_length",
    "completions/clipped_ratio": "train/clipped_ratio",  # completions cut at max_completion_length
    "clip_ratio/region_mean": "train/clip_region",  # tokens whose policy ratio was clipped by epsilon
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
}


@dataclass(frozen=True)
class Preset:
    digits: int  # operand digits
    n_layer: int
    n_embd: int
    n_head: int
    warmup_steps: int  # at most this many supervised warm-up steps (cached)
    warmup_target: float  # ... or until greedy accuracy up to the sign on a dev set reaches this
    warmup_slip: float  # share of the warm-up's subtraction targets with the sign flipped
    warmup_batch: int
    warmup_lr: float
    n_val: int
    n_test: int
    batch: int  # completions per optimizer step (trl's per_device_train_batch_size)
    num_iterations: int  # optimizer steps per generation round (trl's mu)
    lr: float  # base recipe
    lr_range: tuple[float, float]
    num_generations: int  # base recipe
    search: SearchDefaults


PRESETS: dict[str, Preset] = {
    # seconds, for tests: one-digit problems; the tiny warm-up leaves the model weak but GRPO runs end to end
    "smoke": Preset(digits=1, n_layer=1, n_embd=32, n_head=2, warmup_steps=150, warmup_target=1.0, warmup_slip=0.8, warmup_batch=64,
                    warmup_lr=3e-3, n_val=40, n_test=40, batch=12, num_iterations=2, lr=1e-3,
                    lr_range=(1e-5, 1e-2), num_generations=4,
                    search=SearchDefaults(segment_steps=4, max_depth=2, budget_steps=24, eval_every=2)),
    # minutes on a CPU: two-digit addition and subtraction; a fixed 1,850-step warm-up (~3 min, once; the same
    # model on every machine: fixed steps, one thread, deterministic ops)
    "default": Preset(digits=2, n_layer=2, n_embd=64, n_head=4, warmup_steps=1850, warmup_target=1.0, warmup_slip=0.8, warmup_batch=64,
                      warmup_lr=1e-3, n_val=500, n_test=500, batch=48, num_iterations=2, lr=1e-4,
                      lr_range=(1e-5, 1e-2), num_generations=8,
                      search=SearchDefaults(segment_steps=60, max_depth=4, budget_steps=1440, eval_every=20)),
    # a GPU: four-digit problems, a 6x256 GPT-2 (or model=<causal LM>, whose learning rates are HUB_LR), bigger batches
    "gpu": Preset(digits=4, n_layer=6, n_embd=256, n_head=8, warmup_steps=20000, warmup_target=0.5, warmup_slip=0.8, warmup_batch=256,
                  warmup_lr=1e-3, n_val=1000, n_test=1000, batch=256, num_iterations=2, lr=1e-4,
                  lr_range=(1e-6, 3e-3), num_generations=16,
                  search=SearchDefaults(segment_steps=100, max_depth=5, budget_steps=5000, eval_every=25)),
}
# with model=<a pretrained causal LM> the policy is large: learning rates on the usual LLM scale
HUB_LR, HUB_LR_RANGE = 1e-6, (1e-7, 1e-4)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class GrpoArithOptions(TaskOptions):
    """Options of ``grpo_arith``; fields left unset take the preset's value."""

    preset: Literal["default", "smoke", "gpu"] = Field(
        "default", description="sizes and budgets: default (minutes on a CPU), smoke (tests), gpu (real scale)")
    model: str | None = Field(
        None, description="a causal LM path or hub name to post-train instead of the offline GPT-2 (needs its weights)")
    device: str = Field(default_factory=_default_device, description="torch device: cpu or cuda")
    warmup_steps: int | None = Field(None, ge=0, description="supervised warm-up steps before GRPO (cached on disk)")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {v!r}")
        return check_device(v)


def divisors_from_two(n: int) -> list[int]:
    return [g for g in range(2, n + 1) if n % g == 0]


def make_surface(p: Preset) -> ActionSurface:
    valid = [d for d in divisors_from_two(p.batch) if d <= 32]
    g_hi = max(valid)
    answer_tokens = p.digits + 2  # sign or carry digit, digits, end token

    return ActionSurface((
        Knob("lr", p.lr_range[0], p.lr_range[1], Scale.LOG, 1.0, Role.OPTIMIZER,
             "AdamW learning rate of the policy (constant within a segment)",
             caution="too high collapses the policy: reward variance vanishes and KL blows up"),
        Knob("beta", 1e-3, 1.0, Scale.LOG, 1.0, Role.REGULARIZATION,
             "KL coefficient towards the warm-up (reference) model",
             caution="large values pin the policy to the reference and stall learning"),
        Knob("temperature", 0.3, 2.0, Scale.LOG, 0.5, Role.EXPLORATION,
             "sampling temperature of the training completions (evaluation is greedy)",
             caution="low values make a group's completions identical: zero reward variance, no signal"),
        Knob("epsilon", 0.05, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION,
             "clipping range of the policy ratio (1 +- epsilon) on reused generations"),
        Knob("max_completion_length", 2, answer_tokens + 6, Scale.LINEAR, 0.25, Role.CAPACITY,
             f"most tokens a completion may have (a correct answer needs up to {answer_tokens})", integer=True,
             caution=f"below {answer_tokens} long answers are truncated and score zero"),
        Knob("num_generations", 2, g_hi, Scale.LOG, 1.0, Role.CAPACITY,
             f"completions sampled per prompt (the group); prompts per step = {p.batch} / num_generations",
             integer=True, caution=f"must divide {p.batch}; valid: {valid}"),
    ), constraints=(Constraint(ConstraintKind.DIVIDES, ("num_generations",), p.batch,
                               why=f"the {p.batch} completions of a step: trl's generation_batch_size must be "
                               "divisible by num_generations"),))


class _StepSampler(torch.utils.data.Sampler):
    """Yields, for each optimizer step of the segment, its round's prompts, each ``num_generations`` times.

    Step ``s`` uses generation round ``s // num_iterations``; the dataset holds the
    rounds' prompts in order, ``per_round`` rows each, starting at round ``first_round``.
    trl generates only at the first step of a round and reuses that round afterwards.
    """

    def __init__(self, start: int, steps: int, mu: int, first_round: int, per_round: int, num_generations: int):
        self.start, self.steps, self.mu = start, steps, mu
        self.first_round, self.per_round, self.g = first_round, per_round, num_generations

    def __iter__(self):
        for s in range(self.start, self.start + self.steps):
            base = (s // self.mu - self.first_round) * self.per_round
            for j in range(self.per_round):
                yield from [base + j] * self.g

    def __len__(self) -> int:
        return self.steps * self.per_round * self.g


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def _to_cpu(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


@contextlib.contextmanager
def _quiet_hf():
    """Hide transformers' weight-loading bars and two known-harmless notices while a segment runs."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    drop = _DropMessages("passing in an `attention_mask`",  # generate feeds pads after the end token; masked
                         "`loss_type=None` was set in the config")
    handlers = logging.getLogger("transformers").handlers  # filters on handlers also see child loggers' records
    for h in handlers:
        h.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        for h in handlers:
            h.removeFilter(drop)
        if bars:
            hf_logging.enable_progress_bar()


def _optimizer(model: Any, lr: float, state: dict | None) -> tuple:
    """AdamW resumed from ``state`` (None: fresh) at the recipe's learning rate, held constant."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    if state is not None:
        opt.load_state_dict(state)
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] = lr
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _telemetry(task: "GrpoArith", model: Any, tok: Any, recipe: Recipe, segment: Segment, rng: dict, start: int,
               on_eval: OnEval) -> Any:
    """The trainer callback of one segment: restores the RNG before the first step; at each evaluation, reports
    and maybe stops. Its ``result`` holds the last metrics, the steps trained and whether it stopped."""
    from transformers import TrainerCallback

    class Telemetry(TrainerCallback):
        def __init__(self):
            self.result = {"metrics": {}, "stopped": False, "steps": 0, "logged": -1}
            self.window: dict[str, list[float]] = {}

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 0:  # after trl's set_seed and the dataloader's own draws
                _set_rng_state(rng)

        def on_log(self, args, state, control, logs=None, **kw):
            result, window, i = self.result, self.window, state.global_step
            if i == result["logged"]:  # the end-of-training summary repeats the last step
                return
            result["logged"] = i
            for k, v in (logs or {}).items():
                if k in TRL_KEYS and v is not None and math.isfinite(v):
                    window.setdefault(TRL_KEYS[k], []).append(float(v))
            last = i == segment.steps
            if i % segment.eval_every and not last:
                return
            metrics = {k: sum(v) / len(v) for k, v in window.items() if v}
            window.clear()
            if "train/reward_correct" in metrics:
                metrics["train/accuracy"] = metrics["train/reward_correct"]  # sampled, at the recipe's temperature
            metrics["train/lr"] = recipe["lr"]
            metrics.update(task.evaluate(model, tok, test=last))
            result["metrics"], result["steps"] = metrics, i
            if on_eval(start + i, metrics) and not last:
                result["stopped"] = True
                control.should_training_stop = True

    return Telemetry()


class GrpoArith(Task):
    name = "grpo_arith"
    family = Family.GRPO
    objective = Objective("val/accuracy", Direction.MAXIMIZE, "test/accuracy")
    description = (
        "GRPO post-training (trl GRPOTrainer) of a small language model on multi-digit addition and subtraction. "
        "Each prompt gets a group of sampled completions; rewards are exact correctness (1) plus a format reward "
        "(0.2 for a single integer ending properly); advantages are rewards normalised within the group. The model "
        "was warmed up by supervised training to a partial accuracy and is also the KL reference. The goal is the "
        "highest greedy validation accuracy at the end of the schedule; the learning rate is constant within a segment."
    )
    Options = GrpoArithOptions
    presets = ("default", "smoke", "gpu")

    def __init__(self, options: GrpoArithOptions | None = None):
        super().__init__(options)
        o = self.options
        p = PRESETS[o.preset]
        if o.warmup_steps is not None:
            p = replace(p, warmup_steps=o.warmup_steps)
        if o.model is not None:
            p = replace(p, lr=HUB_LR, lr_range=HUB_LR_RANGE)
        self.preset = p
        self.val_set, self.test_set = held_out_sets(p.digits, p.n_val, p.n_test)
        self._held_out = set(self.val_set) | set(self.test_set)
        self._surface = make_surface(p)
        self._warm_dir: Path | None = None

    # -- contract -----------------------------------------------------------------

    @property
    def surface(self) -> ActionSurface:
        return self._surface

    def base_recipe(self) -> Recipe:
        p = self.preset
        return {"lr": p.lr, "beta": 0.04, "temperature": 1.0, "epsilon": 0.2,
                "max_completion_length": p.digits + 4, "num_generations": p.num_generations}

    def search_defaults(self) -> SearchDefaults:
        return self.preset.search

    def info(self) -> dict[str, Any]:
        p, warm = self.preset, self.warm_dir()
        done = json.loads((warm / "warmup.json").read_text())
        return {"model": self.options.model or f"gpt2 {p.n_layer}x{p.n_embd} (offline, char tokenizer)",
                "digits": p.digits, "warmup": f"{done['steps']} steps, val accuracy {done['val_accuracy']:.3f}",
                "warmup_fingerprint": done.get("fingerprint"),
                "warmup_dir": str(warm), "batch": p.batch, "num_iterations": p.num_iterations,
                "n_val": p.n_val, "n_test": p.n_test}

    def warm_spec(self) -> WarmupSpec:
        p = self.preset
        return WarmupSpec(digits=p.digits, n_layer=p.n_layer, n_embd=p.n_embd, n_head=p.n_head, steps=p.warmup_steps,
                          batch_size=p.warmup_batch, lr=p.warmup_lr, seed=0, n_val=p.n_val, n_test=p.n_test,
                          slip=p.warmup_slip, target_accuracy=p.warmup_target, model=self.options.model)

    def warm_dir(self) -> Path:
        if self._warm_dir is None:
            with _quiet_hf():
                self._warm_dir = warm_start(self.warm_spec(), device=self.options.device)
        return self._warm_dir

    def _load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.warm_dir())
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        with _quiet_hf():
            model = AutoModelForCausalLM.from_pretrained(self.warm_dir(), dtype=torch.float32)
        return model, tok

    def init(self, seed: int) -> dict:
        # the root is the warm-up model itself (shared by all seeds); the seed drives sampling and data order
        model, _ = self._load()
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        return {"model": model.state_dict(), "optim": None, "step": 0, "seed": seed, "rng": _rng_state(),
                "trl_buffer": None}

    def evaluate(self, model, tok, test: bool = False) -> dict[str, float]:
        """Greedy accuracy on the validation set (and the test set when ``test``); also ignoring the sign."""
        digits, n_new = self.preset.digits, self.preset.digits + 3
        out = {}
        for split, problems in (("val", self.val_set), ("test", self.test_set))[: 2 if test else 1]:
            out[f"{split}/accuracy"], out[f"{split}/accuracy_unsigned"] = greedy_scores(model, tok, problems, digits, n_new)
        return out

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        """Greedy accuracy on fresh validation problems drawn with ``seed`` (as many as the validation set, none
        of them a validation or test problem)."""
        p = self.preset
        rng, fresh = random.Random(f"reevaluate:{seed}:{p.digits}"), []
        while len(fresh) < len(self.val_set):
            prob = random_problem(rng, p.digits)
            if prob not in self._held_out and prob not in fresh:
                fresh.append(prob)
        with _quiet_hf():
            model, tok = self._load()
            model.load_state_dict(checkpoint["model"])
            model.to(torch.device(self.options.device))
            acc, unsigned = greedy_scores(model, tok, fresh, p.digits, p.digits + 3)
        return {"val/accuracy": acc, "val/accuracy_unsigned": unsigned}

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        with _quiet_hf():
            return self._train_segment(checkpoint, recipe, segment, on_eval)

    def _train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        recipe = self.surface.check(recipe)
        p, dev = self.preset, torch.device(self.options.device)
        mu, seed, start = p.num_iterations, int(checkpoint["seed"]), int(checkpoint["step"])

        # resume the policy and AdamW from the parent's checkpoint; the learning rate is the recipe's, constant
        model, tok = self._load()  # its path (the warm-up model) is what trl loads as the KL reference
        model.load_state_dict(checkpoint["model"])
        model.to(dev)
        opt, sched = _optimizer(model, recipe["lr"], checkpoint["optim"])

        # generation, reward and update: trl's GRPO over this segment's prompts; the telemetry callback
        # restores the RNG before the first step, evaluates, reports and maybe stops
        telemetry = _telemetry(self, model, tok, recipe, segment, checkpoint["rng"], start, on_eval)
        with tempfile.TemporaryDirectory(prefix="grpo_arith-") as out_dir:
            trainer = self._trainer(model, tok, (opt, sched), telemetry, out_dir, recipe, segment, seed, start)
            buffer = checkpoint.get("trl_buffer")
            trainer._step = start % mu
            trainer._buffered_inputs = _to_device(buffer, dev) if buffer is not None and start % mu else None
            trainer.train()

        result = telemetry.result
        if result["stopped"]:
            return SegmentResult(None, result["steps"], result["metrics"], stopped=True)
        ckpt = {
            "model": _to_cpu(model.state_dict()), "optim": _to_cpu(opt.state_dict()), "step": start + segment.steps,
            "seed": seed, "rng": _rng_state(), "scheduler": {"kind": "constant", "lr": recipe["lr"]},
            "trl_buffer": _to_cpu(trainer._buffered_inputs) if (start + segment.steps) % mu else None,
        }
        return SegmentResult(ckpt, segment.steps, result["metrics"])

    def _trainer(self, model, tok, optimizers: tuple, telemetry: Any, out_dir: str, recipe: Recipe, segment: Segment,
                 seed: int, start: int):
        """trl's GRPOTrainer for one segment: the recipe's settings, the prompts of every generation round the
        segment touches (a pure function of seed and round) in order, and no output but the telemetry's."""
        from datasets import Dataset
        from transformers import PrinterCallback
        from trl import GRPOConfig, GRPOTrainer

        p, dev = self.preset, torch.device(self.options.device)
        g, mu = int(recipe["num_generations"]), p.num_iterations
        per_round = p.batch // g
        first_round, last_round = start // mu, (start + segment.steps - 1) // mu
        rows = []
        for r in range(first_round, last_round + 1):
            for j in range(per_round):
                prob = train_problem(seed, r, j, p.digits, self._held_out)
                rows.append({"prompt": prob.prompt(p.digits), "answer": prob.answer})
        args = GRPOConfig(
            output_dir=out_dir, seed=seed, use_cpu=dev.type == "cpu", bf16=False, fp16=False,
            report_to=[], save_strategy="no", disable_tqdm=True, logging_steps=1, log_level="warning",
            max_steps=segment.steps, per_device_train_batch_size=p.batch, gradient_accumulation_steps=1,
            activation_checkpointing=False, dataloader_num_workers=0, shuffle_dataset=False,
            learning_rate=recipe["lr"], lr_scheduler_type="constant", max_grad_norm=1.0,
            num_generations=g, num_iterations=mu, max_completion_length=int(recipe["max_completion_length"]),
            temperature=recipe["temperature"], beta=recipe["beta"], epsilon=recipe["epsilon"],
            reward_weights=[1.0, FORMAT_WEIGHT], disable_dropout=True, log_completions=False,
        )
        sampler = _StepSampler(start, segment.steps, mu, first_round, per_round, g)

        class SegmentTrainer(GRPOTrainer):
            def _get_train_sampler(self, dataset=None):
                return sampler

        trainer = SegmentTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
            reward_funcs=[correctness_reward, functools.partial(format_reward, eos_ids=[tok.eos_token_id])],
            callbacks=[telemetry], optimizers=optimizers,
        )
        trainer.remove_callback(PrinterCallback)  # our telemetry goes through on_eval, not stdout
        # a segment that starts inside a generation round continues it exactly (trl private state)
        for attr in ("_step", "_buffered_inputs"):
            if not hasattr(trainer, attr):
                raise RuntimeError(f"this trl version has no GRPOTrainer.{attr}; exact resume needs it")
        return trainer
