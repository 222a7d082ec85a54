"""toy: a fast synthetic regression that overfits (seconds on a CPU), for tests.

An MLP fits 48 noisy samples of a smooth function; validation and test sets come
from the same function without sharing samples. Under the fixed recipe (cosine
learning rate, no dropout, no weight decay) training loss keeps falling while
validation loss turns up: dropout and weight decay are what a schedule can add.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
from pydantic import Field

from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale
from searchmgr.tasks.base import Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task
from searchmgr.tasks.device import DeviceOptions


class ToyOptions(DeviceOptions):
    preset: str = "default"
    n_train: int = Field(48, ge=8, description="training samples (few, so the model overfits)")
    noise: float = Field(0.5, ge=0.0, description="label noise standard deviation")
    width: int = Field(128, ge=4, description="hidden width of the MLP")
    step_delay_s: float = Field(0.0, ge=0.0, le=1.0, description="sleep per step, to mimic slow training in tests")


class MLP(nn.Module):
    def __init__(self, d_in: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, width), nn.ReLU(), nn.Dropout(0.0),
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(0.0),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B,)
        return self.net(x).squeeze(-1)


def cosine_factor(step: int, horizon: int, floor: float = 0.1) -> float:
    """1 at step 0, ``floor`` at ``horizon`` (and after)."""
    t = min(max(step / max(horizon, 1), 0.0), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


class ToyTask(Task):
    name = "toy"
    family = Family.SUPERVISED
    objective = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    description = (
        "Regression of a smooth 4-dimensional function with a two-layer MLP trained full-batch "
        "with AdamW on a small noisy training set. The goal is the lowest validation MSE at the "
        "end of the schedule; the learning rate follows a cosine decay scaled by the lr knob."
    )
    Options = ToyOptions
    presets = ("default", "smoke")
    D_IN = 4

    def __init__(self, options: ToyOptions | None = None):
        super().__init__(options)
        g = torch.Generator().manual_seed(1234)  # the dataset is fixed; seeds vary the model
        w = 0.6 * torch.randn(self.D_IN, 3, generator=g)
        self._w = w  # fresh validation sets for evaluate_checkpoint

        def sample(n: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn(n, self.D_IN, generator=g)
            y = torch.sin(x @ w).sum(-1) + noise * torch.randn(n, generator=g)
            return x, y

        o = self.options
        self.device = torch.device(o.device)
        self.train_set, self.val_set, self.test_set = (
            tuple(t.to(self.device) for t in sample(n, o.noise)) for n in (o.n_train, 512, 512))
        self._surface = ActionSurface((
            Knob("lr", 1e-4, 3e-2, Scale.LOG, 1.0, Role.OPTIMIZER, "peak learning rate of the cosine schedule"),
            Knob("dropout", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "dropout after each hidden layer"),
            Knob("weight_decay", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "AdamW decoupled weight decay"),
        ))

    @property
    def surface(self) -> ActionSurface:
        return self._surface

    def base_recipe(self) -> Recipe:
        return {"lr": 1e-3, "dropout": 0.0, "weight_decay": 0.0}

    def search_defaults(self) -> SearchDefaults:
        if self.options.preset == "smoke":
            return SearchDefaults(segment_steps=20, max_depth=3, budget_steps=240, eval_every=10)
        return SearchDefaults(segment_steps=100, max_depth=4, budget_steps=2400, eval_every=25)

    def init(self, seed: int) -> dict:
        torch.manual_seed(seed)
        model = MLP(self.D_IN, self.options.width)
        opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
        return {"model": model.state_dict(), "optim": opt.state_dict(), "step": 0, "rng": self._rng()}

    def _rng(self) -> dict:
        """The RNG dropout draws from: torch's CPU one, or the device's."""
        if self.device.type == "cuda":
            return {"cuda": torch.cuda.get_rng_state(self.device)}
        return {"cpu": torch.get_rng_state()}

    def _set_rng(self, state: dict | torch.Tensor) -> None:
        if isinstance(state, torch.Tensor):  # runs made before the device option
            state = {"cpu": state}
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
        else:
            torch.set_rng_state(state["cpu"])

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        """The validation MSE on a fresh validation set of the same size, drawn with ``seed``."""
        g = torch.Generator().manual_seed(1_000_003 + seed)
        x = torch.randn(len(self.val_set[0]), self.D_IN, generator=g)
        y = torch.sin(x @ self._w).sum(-1) + self.options.noise * torch.randn(len(x), generator=g)
        model = MLP(self.D_IN, self.options.width).to(self.device)
        model.load_state_dict(checkpoint["model"])
        return {"val/loss": self._mse(model, (x.to(self.device), y.to(self.device)))}

    @torch.no_grad()
    def _mse(self, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.eval()
        x, y = data
        loss = nn.functional.mse_loss(model(x), y).item()
        model.train()
        return loss

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        # resume model, optimizer and RNG from the parent's checkpoint (loaded on the CPU: move to the device)
        model = MLP(self.D_IN, self.options.width).to(self.device)
        model.load_state_dict(checkpoint["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
        opt.load_state_dict(checkpoint["optim"])
        self._set_rng(checkpoint["rng"])
        # apply the recipe
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = recipe["dropout"]
        for group in opt.param_groups:
            group["weight_decay"] = recipe["weight_decay"]
        x, y = self.train_set
        metrics: dict[str, float] = {}
        step = segment.start_step
        for i in range(1, segment.steps + 1):
            # one full-batch step at the scheduled learning rate
            lr = recipe["lr"] * cosine_factor(step, segment.horizon)
            for group in opt.param_groups:
                group["lr"] = lr
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if self.options.step_delay_s:
                time.sleep(self.options.step_delay_s)
            # evaluate
            last = i == segment.steps
            if i % segment.eval_every == 0 or last:
                metrics = {"train/loss": self._mse(model, self.train_set), "val/loss": self._mse(model, self.val_set),
                           "train/lr": lr}
                if last:
                    metrics["test/loss"] = self._mse(model, self.test_set)
                if on_eval(step, metrics) and not last:
                    return SegmentResult(None, i, metrics, stopped=True)
        ckpt = {"model": model.state_dict(), "optim": opt.state_dict(), "step": step, "rng": self._rng()}
        return SegmentResult(ckpt, segment.steps, metrics)
