"""A plain PyTorch plug-in task: an MLP classifies scikit-learn's bundled 8x8 digits.

    searchmgr explore task=examples/digits_task.py:DigitsTask preset=smoke

The data ship inside scikit-learn (``sklearn.datasets.load_digits``: 1,797 images, no
download). A small training split makes the MLP overfit under the fixed recipe; the
search moves its learning rate, dropout and weight decay. Copy this file to start
your own task: the contract is in docs/tasks.md, and ``check_task`` tests it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from pydantic import Field
from sklearn.datasets import load_digits

from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale
from searchmgr.tasks import Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task
from searchmgr.tasks.device import DeviceOptions


class DigitsOptions(DeviceOptions):  # adds device= (cpu, cuda, cuda:N; checked against this machine)
    preset: str = Field("default", description="default or smoke (tiny budgets for tests)")
    n_train: int = Field(200, ge=20, le=1000, description="training images (few, so the MLP overfits)")
    width: int = Field(256, ge=8, description="hidden width of the MLP")
    batch: int = Field(32, ge=1, description="minibatch size")


class DigitsTask(Task):
    name = "digits"
    family = Family.SUPERVISED
    objective = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    description = ("An MLP with two hidden layers classifies 8x8 handwritten digits (scikit-learn's bundled set) "
                   "from a small training split, trained with AdamW on minibatches under a cosine learning rate; "
                   "the goal is the lowest validation cross-entropy at the end of the schedule.")
    Options = DigitsOptions
    presets = ("default", "smoke")

    def __init__(self, options: DigitsOptions | None = None):
        super().__init__(options)
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32) / 16.0  # (1797, 64) in [0, 1]
        y = torch.tensor(y, dtype=torch.long)  # (1797,)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # a fixed split
        n, self.device = self.options.n_train, torch.device(self.options.device)
        x, y = x.to(self.device), y.to(self.device)
        self.train_set = (x[order[:n]], y[order[:n]])
        self.val_set = (x[order[1000:1400]], y[order[1000:1400]])
        self.test_set = (x[order[1400:]], y[order[1400:]])

    @property
    def surface(self) -> ActionSurface:
        return ActionSurface((
            Knob("lr", 1e-4, 1e-2, Scale.LOG, 1.0, Role.OPTIMIZER, "peak learning rate of the cosine schedule"),
            Knob("dropout", 0.0, 0.6, Scale.LINEAR, 0.2, Role.REGULARIZATION, "dropout after each hidden layer"),
            Knob("weight_decay", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "AdamW decoupled weight decay"),
        ))

    def base_recipe(self) -> Recipe:
        return {"lr": 3e-3, "dropout": 0.0, "weight_decay": 0.0}

    def search_defaults(self) -> SearchDefaults:
        if self.options.preset == "smoke":
            return SearchDefaults(segment_steps=10, max_depth=2, budget_steps=60, eval_every=5)
        return SearchDefaults(segment_steps=150, max_depth=4, budget_steps=3000, eval_every=50)

    def info(self) -> dict:
        return {"train_images": len(self.train_set[1]), "data_source": "sklearn.datasets.load_digits"}

    def _model(self) -> nn.Module:
        w = self.options.width
        return nn.Sequential(nn.Linear(64, w), nn.ReLU(), nn.Dropout(0.0), nn.Linear(w, w), nn.ReLU(),
                             nn.Dropout(0.0), nn.Linear(w, 10))

    def init(self, seed: int) -> dict:
        torch.manual_seed(seed)
        model = self._model()
        opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
        data = torch.Generator().manual_seed(seed)  # the minibatch order
        state = {"model": model.state_dict(), "optim": opt.state_dict(), "step": 0,
                 "rng": torch.get_rng_state(), "data_rng": data.get_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
        model.eval()
        logits = model(data[0])  # (N, 10)
        loss = nn.functional.cross_entropy(logits, data[1]).item()
        acc = (logits.argmax(-1) == data[1]).float().mean().item()
        model.train()
        return loss, acc

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        # resume model, optimizer, RNG and data order (checkpoints arrive on the CPU: move the model first)
        model = self._model().to(self.device)
        model.load_state_dict(checkpoint["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
        opt.load_state_dict(checkpoint["optim"])
        torch.set_rng_state(checkpoint["rng"])
        if self.device.type == "cuda":  # dropout draws from the device's RNG
            torch.cuda.set_rng_state(checkpoint["cuda_rng"], self.device)
        data = torch.Generator()
        data.set_state(checkpoint["data_rng"])
        # apply the recipe
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = recipe["dropout"]
        for g in opt.param_groups:
            g["weight_decay"] = recipe["weight_decay"]
        x, y = self.train_set
        metrics: dict[str, float] = {}
        for i in range(1, segment.steps + 1):
            # one minibatch step at the scheduled learning rate
            step = segment.start_step + i - 1
            lr = recipe["lr"] * 0.5 * (1 + math.cos(math.pi * min(step / segment.horizon, 1.0)))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = torch.randint(0, len(y), (self.options.batch,), generator=data).to(self.device)  # (B,)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            # evaluate
            last = i == segment.steps
            if i % segment.eval_every == 0 or last:
                train_loss, train_acc = self._evaluate(model, self.train_set)
                val_loss, val_acc = self._evaluate(model, self.val_set)
                metrics = {"train/loss": train_loss, "train/acc": train_acc, "train/lr": lr,
                           "val/loss": val_loss, "val/acc": val_acc}
                if last:
                    metrics["test/loss"], metrics["test/acc"] = self._evaluate(model, self.test_set)
                if on_eval(segment.start_step + i, metrics) and not last:
                    return SegmentResult(None, i, metrics, stopped=True)
        ckpt = {"model": model.state_dict(), "optim": opt.state_dict(), "step": segment.end_step,
                "rng": torch.get_rng_state(), "data_rng": data.get_state()}
        if self.device.type == "cuda":
            ckpt["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return SegmentResult(ckpt, segment.steps, metrics)
