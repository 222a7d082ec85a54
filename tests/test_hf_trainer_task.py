"""TrainerTask: the recipe wins over what HF's resume restores, mismatches fail loudly, SIGKILL and resume."""

import io
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from searchmgr.hf import HFKnob, HyperparameterMismatch, TrainerTask
from searchmgr.search import explore
from searchmgr.store import NodeStatus, TreeStore
from searchmgr.surface import Knob, Role, Scale
from searchmgr.tasks import load_task
from searchmgr.tasks.base import Segment
from searchmgr.tasks.testing import check_task
from tests.test_kill_resume import snapshot

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "hf_gpt2_task.py") + ":TinyGPT2Stories"
A = {"learning_rate": 3e-3, "weight_decay": 0.0, "dropout": 0.0}
B = {"learning_rate": 1e-3, "weight_decay": 0.1, "dropout": 0.2}


@pytest.fixture(scope="module")
def task():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_task(EXAMPLE, {"preset": "smoke"}).inner


def segment(task, ckpt, recipe, start, on_eval=lambda s, m: False):
    return task.train_segment(ckpt, recipe, Segment(start, 8, 16, 4), on_eval)


def test_the_example_keeps_the_task_contract(task):
    check_task(task)


def test_child_runs_its_own_recipe_not_the_parents_restored_one(task):
    first = segment(task, task.init(0), A, 0)
    files = first.checkpoint["files"]
    # what HF's resume restores: the parent's hyperparameters (transformers#23099)
    optim = torch.load(io.BytesIO(files["optimizer.pt"]), weights_only=False)
    sched = torch.load(io.BytesIO(files["scheduler.pt"]), weights_only=False)
    assert {g["initial_lr"] for g in optim["param_groups"]} == {3e-3} and set(sched["base_lrs"]) == {3e-3}
    evals = []
    second = segment(task, first.checkpoint, B, 8, lambda s, m: evals.append((s, m)) or False)
    assert [s for s, _ in evals] == [12, 16]
    for _, m in evals:
        assert {k: m[f"hp/{k}"] for k in B} == pytest.approx(B)
    assert second.metrics["train/learning_rate"] < 1e-3  # the cosine factor on the new peak, not the old one
    assert "test/loss" in second.metrics and "val/loss" in second.metrics


def test_label_smoothing_warmup_and_selected_dropout_take_effect_after_the_resume(task):
    from searchmgr.hf import knobs

    t = TrainerTask(name="more", model_init=task.model_init, args=task.args, train_dataset=task.datasets["train"],
                    eval_dataset=task.datasets["eval"], test_dataset=task.datasets["test"],
                    knobs=[knobs.learning_rate(1e-4, 1e-2), knobs.label_smoothing(0.0, 0.3),
                           knobs.warmup_ratio(0.0, 0.5),
                           knobs.dropout(0.0, 0.5, modules=r"attn\.attn_dropout$", name="attn_dropout")],
                    base_recipe={"learning_rate": 3e-3, "label_smoothing_factor": 0.0, "warmup_ratio": 0.0,
                                 "attn_dropout": 0.0}, search_defaults=task.search_defaults())
    child = {"learning_rate": 1e-3, "label_smoothing_factor": 0.1, "warmup_ratio": 0.25, "attn_dropout": 0.2}
    first = segment(t, t.init(0), t.base_recipe(), 0)
    second = segment(t, first.checkpoint, child, 8)
    assert {k: second.metrics[f"hp/{k}"] for k in child} == pytest.approx(child)
    # the new peak under a cosine after the new 4-step warmup (0.25 x 16), at the last update (step 15)
    assert second.metrics["train/learning_rate"] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 11 / 12)))


def test_a_knob_that_does_not_take_effect_fails_the_segment(task):
    def read(parts):
        return [m.p for m in parts.model.modules() if isinstance(m, torch.nn.Dropout)]

    broken = HFKnob(Knob("dropout", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "dropout"),
                    apply=lambda parts, v: None, read=read)
    t = TrainerTask(name="broken", model_init=task.model_init, args=task.args, train_dataset=task.datasets["train"],
                    eval_dataset=task.datasets["eval"], test_dataset=task.datasets["test"], knobs=[broken],
                    base_recipe={"dropout": 0.0}, search_defaults=task.search_defaults())
    with pytest.raises(HyperparameterMismatch, match=r"dropout: recipe 0.2, effective \[0.0\]"):
        segment(t, t.init(0), {"dropout": 0.2}, 0)


@pytest.mark.slow
def test_sigkill_mid_segment_then_resume_keeps_every_recipe(tmp_path, task):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "searchmgr", "explore", f"task={EXAMPLE}", "preset=smoke", "budget.steps=40",
           f"out={run}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    killed, deadline = None, time.time() + 120
    while time.time() < deadline and killed is None:
        rows = snapshot(run / "tree.db") if (run / "tree.db").exists() else []
        running = [r for r in rows if r[1] == "running" and r[2] > 0]  # evaluated once, not finished
        if len([r for r in rows if r[1] == "done"]) >= 3 and running:  # the root and the fixed path (depth 2)
            proc.send_signal(signal.SIGKILL)
            killed = running[0][0]
        elif proc.poll() is not None:
            raise AssertionError(f"explore ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert killed is not None and proc.returncode == -signal.SIGKILL

    explore(["budget.steps=40"], resume=run)
    with TreeStore(run / "tree.db") as store:
        nodes = store.nodes(1)
        assert store.node(killed).status.finished
        assert max(n.depth for n in nodes) >= 2 and len(nodes) >= 5
        for n in nodes[1:]:
            assert n.status in (NodeStatus.DONE, NodeStatus.PRUNED), (n.id, n.status, n.error)
            evals = store.metrics(n.id)
            assert evals and all(m[f"hp/{k}"] == pytest.approx(v) for _, m in evals for k, v in n.recipe.items())
            if n.id == killed:  # retrained from its start
                assert evals[0][0] == n.start_step + 4 and len(evals) == len({s for s, _ in evals})
