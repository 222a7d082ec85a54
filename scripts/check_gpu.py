"""Check searchmgr's device handling on a machine with CUDA GPUs (nothing here needs a network).

    .venv/bin/python scripts/check_gpu.py            # exits 0 when every check passes, 1 on a failure,
                                                     # 2 when this machine has no CUDA GPU (nothing checked)

1. ``device=cuda`` is accepted; ``device=cuda:N`` past the visible GPUs fails with a clear message.
2. The CartPole PPO example keeps the task contract on the GPU (exact resume, every knob acts).
3. A search with ``executor.name=process executor.gpus_per_worker=1`` gives each worker its own GPU:
   the probe task below reports which GPU its worker saw, and the run must have used as many distinct
   GPUs as workers; every stored checkpoint loads onto the CPU.

The probe task (``GpuProbe``) is also what the CPU test suite runs with a pretend set of GPUs
(tests/test_devices.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale
from pydantic import Field

from searchmgr.tasks import Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task
from searchmgr.tasks.device import DeviceOptions

ROOT = Path(__file__).resolve().parent.parent


def visible_gpu() -> float:
    """The first entry of this process's CUDA_VISIBLE_DEVICES as a number (-1: unset)."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return float(mask) if mask.isdigit() else -1.0


class ProbeOptions(DeviceOptions):
    step_delay_s: float = Field(0.0, ge=0.0, le=1.0, description="sleep per step, so that workers overlap")


class GpuProbe(Task):
    """A linear regression on ``device`` that reports where it ran (``sys/visible_gpu``, ``sys/on_cuda``)."""

    name = "gpu_probe"
    family = Family.SUPERVISED
    objective = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    description = "A linear model fits a noisy line; it reports the GPU its process saw."
    Options = ProbeOptions

    @property
    def surface(self) -> ActionSurface:
        return ActionSurface((Knob("lr", 1e-3, 0.3, Scale.LOG, 1.0, Role.OPTIMIZER, "SGD learning rate"),))

    def base_recipe(self) -> Recipe:
        return {"lr": 0.03}

    def search_defaults(self) -> SearchDefaults:
        return SearchDefaults(segment_steps=4, max_depth=2, budget_steps=40, eval_every=2)

    def init(self, seed: int) -> dict:
        torch.manual_seed(seed)
        model = nn.Linear(1, 1).to(self.options.device)
        return {"model": model.state_dict()}  # on the device: the store must load it onto the CPU

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        device = torch.device(self.options.device)
        cpu_loaded = all(t.device.type == "cpu" for t in checkpoint["model"].values())
        model = nn.Linear(1, 1).to(device)
        model.load_state_dict(checkpoint["model"])
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 1, generator=g).to(device)
        y = 2 * x + 0.1 * torch.randn(64, 1, generator=g).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"])
        metrics: dict[str, float] = {}
        for i in range(1, segment.steps + 1):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(self.options.step_delay_s)
            if i % segment.eval_every == 0 or i == segment.steps:
                with torch.no_grad():
                    val = nn.functional.mse_loss(model(x[:32]), y[:32]).item()
                metrics = {"val/loss": val, "test/loss": val, "sys/visible_gpu": visible_gpu(),
                           "sys/on_cuda": float(next(model.parameters()).is_cuda),
                           "sys/loaded_on_cpu": float(cpu_loaded)}
                if on_eval(segment.start_step + i, metrics) and i < segment.steps:
                    return SegmentResult(None, i, metrics, stopped=True)
        return SegmentResult({"model": model.state_dict()}, segment.steps, metrics)


def run_probe(out: Path, workers: int, device: str, step_delay_s: float = 0.05) -> set[float]:
    """A process-executor search of the probe, one GPU per worker; the GPUs its segments saw."""
    from searchmgr.search import explore
    from searchmgr.store import TreeStore, load_checkpoint

    explore([f"task={Path(__file__).resolve()}:GpuProbe", f"device={device}", f"out={out}", "threads=1",
             f"step_delay_s={step_delay_s}",
             "executor.name=process", f"executor.workers={workers}", "executor.gpus_per_worker=1",
             "stopper.name=none"])
    seen = set()
    with TreeStore(out / "tree.db") as store:
        for node in store.nodes(store.search()["id"]):
            for _, metrics in store.metrics(node.id):
                seen.add(metrics["sys/visible_gpu"])
                assert metrics["sys/loaded_on_cpu"] == 1.0, "a checkpoint reached the task on a device, not the CPU"
                assert metrics["sys/on_cuda"] == float(device.startswith("cuda")), metrics
            if node.checkpoint:
                state = load_checkpoint(out / node.checkpoint, node.checkpoint_sha256)
                assert all(t.device.type == "cpu" for t in state["model"].values())
    return seen


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch here: nothing checked (run this on a GPU machine)")
        return 2
    from searchmgr.tasks import TaskError, load_task
    from searchmgr.tasks.testing import check_task

    os.chdir(ROOT)  # the example's reference is relative to the repository
    n = torch.cuda.device_count()
    print(f"{n} GPU(s): {[torch.cuda.get_device_name(i) for i in range(n)]}")
    try:
        load_task("examples/cartpole_ppo.py:CartPolePPO", {"device": f"cuda:{n}"})
        raise AssertionError(f"device=cuda:{n} was accepted with {n} GPU(s)")
    except TaskError as e:
        assert f"only {n} CUDA GPU(s) are visible" in str(e), e
    print("ok: device=cuda:N past the visible GPUs is refused")
    found = check_task(load_task("examples/cartpole_ppo.py:CartPolePPO", {"preset": "smoke", "device": "cuda"}))
    print(f"ok: the CartPole PPO example keeps the contract on cuda; knobs: {[k.line() for k in found['knobs']]}")
    workers = min(n, 4)
    with tempfile.TemporaryDirectory() as tmp:
        seen = run_probe(Path(tmp) / "run", workers, "cuda")
    assert len(seen) == workers, f"{workers} workers used GPUs {sorted(seen)}; expected {workers} distinct ones"
    print(f"ok: {workers} process workers trained on {workers} distinct GPUs {sorted(seen)}; checkpoints load on CPU")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
