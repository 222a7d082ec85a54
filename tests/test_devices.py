"""Devices on a CPU machine: the device= option, one GPU group per process worker, checkpoints loaded on the CPU.

scripts/check_gpu.py runs the same probe on a machine with GPUs."""

import importlib.util
import os

import pytest
import torch

from searchmgr.config import ConfigError
from searchmgr.executors.base import ExecutorUnavailable
from searchmgr.executors.process import assign_gpus, visible_gpus
from searchmgr.search import explore
from searchmgr.tasks import TaskOptionsError, load_task
from searchmgr.tasks.device import check_device

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "check_gpu.py")


def _script():
    spec = importlib.util.spec_from_file_location("check_gpu_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ref", ["toy", "examples/digits_task.py:DigitsTask", "examples/cartpole_ppo.py:CartPolePPO"])
def test_tasks_take_a_device_option_that_defaults_to_cpu_and_refuses_an_absent_gpu(ref, monkeypatch):
    monkeypatch.chdir(os.path.join(os.path.dirname(__file__), ".."))
    assert load_task(ref, {"preset": "smoke"}).options.device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(TaskOptionsError, match="device=cuda was asked but .*use device=cpu"):
            load_task(ref, {"preset": "smoke", "device": "cuda"})
    with pytest.raises(TaskOptionsError, match="device must be cpu, cuda, cuda:N or mps, got 'gpu'"):
        load_task(ref, {"preset": "smoke", "device": "gpu"})


def test_a_gpu_index_past_the_visible_ones_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"device=cuda:2 was asked but only 2 CUDA GPU\(s\) are visible"):
        check_device("cuda:2")


def test_each_worker_gets_its_own_group_of_the_visible_gpus(monkeypatch):
    assert assign_gpus(2, 1, ["5", "7"]) == ["5", "7"]
    assert assign_gpus(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert assign_gpus(3, 0, []) == [None, None, None]
    with pytest.raises(ExecutorUnavailable, match=r"executor.workers=2 x executor.gpus_per_worker=1 needs 2 GPU"):
        assign_gpus(2, 1.0, ["0"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 4")
    assert visible_gpus() == ["3", "4"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_process_workers_see_one_gpu_each_and_checkpoints_load_on_the_cpu(tmp_path, monkeypatch):
    # pretend the search may use GPUs 5 and 7: each worker's CUDA_VISIBLE_DEVICES names one of them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    seen = _script().run_probe(tmp_path / "run", workers=2, device="cpu")
    assert seen == {5.0, 7.0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # too few: refused before any worker starts
    with pytest.raises(ConfigError, match="needs 2 GPU"):
        explore([f"task={SCRIPT}:GpuProbe", f"out={tmp_path / 'few'}", "executor.name=process",
                 "executor.workers=2", "executor.gpus_per_worker=1"])
