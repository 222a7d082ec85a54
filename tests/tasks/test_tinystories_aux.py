"""tinystories_aux: the dialogue head, its knob and metrics, and exact resume (smoke preset)."""

from __future__ import annotations

import math

import pytest
import torch

from searchmgr.surface import Role
from searchmgr.tasks import TaskOptionsError, make_task
from stories_common import _isolated, run  # noqa: F401  (autouse fixture)
from searchmgr.tasks.tinystories_aux import DialogueGPT


def smoke(**options):
    return make_task("tinystories_aux", {"preset": "smoke", "data": "generator", "device": "cpu", **options})


def test_surface_and_base_recipe():
    task = smoke()
    assert task.surface.names == ["lr", "dropout", "weight_decay", "lambda_dialogue"]
    assert task.surface["lambda_dialogue"].role is Role.OBJECTIVE
    assert task.base_recipe() == {"lr": 1e-3, "dropout": 0.0, "weight_decay": 0.0, "lambda_dialogue": 0.1}
    assert task.objective.metric == "val/loss"
    assert isinstance(task.build_model(), DialogueGPT)


def test_smoke_segment_reports_dialogue_metrics():
    task = smoke()
    result, log = run(task, task.init(0), task.base_recipe(), 0, 8)
    final = result.metrics
    for key in ("train/loss", "val/loss", "train/dialogue_loss", "val/dialogue_loss", "val/dialogue_acc",
                "train/running_dialogue_loss", "test/loss", "test/dialogue_loss", "test/dialogue_acc"):
        assert math.isfinite(final[key]), key
    assert 0.0 <= final["val/dialogue_acc"] <= 1.0
    assert "test/dialogue_acc" not in log[0][1]


def test_lambda_weights_the_dialogue_loss():
    task = smoke()
    model, _, sampler = task._restore(task.init(0), task.base_recipe())
    from searchmgr.tasks._stories import sample_windows

    d = task.data
    batch = sample_windows(d.train, 4, task.options.context, d.pad, sampler)
    low, parts = task.loss(model, batch, {"lambda_dialogue": 0.01})
    high, _ = task.loss(model, batch, {"lambda_dialogue": 1.0})
    assert torch.isclose(high - low, 0.99 * parts["dialogue_loss"], rtol=1e-4)
    assert torch.isclose(low, parts["loss"] + 0.01 * parts["dialogue_loss"], rtol=1e-5)


def test_two_segments_equal_one_long_segment():
    task = smoke()
    recipe = {"lr": 3e-3, "dropout": 0.1, "weight_decay": 0.2, "lambda_dialogue": 0.5}
    root = task.init(1)
    one, log_one = run(task, root, recipe, 0, 8)
    first, _ = run(task, root, recipe, 0, 4)
    second, log_two = run(task, first.checkpoint, recipe, 4, 4)
    assert log_two[-1][1] == log_one[-1][1]
    for k, v in one.checkpoint["model"].items():
        assert torch.equal(v, second.checkpoint["model"][k]), k


def test_overfit_checkpoint_is_refused():
    """A checkpoint of the plain LM task has no dialogue head: resuming it here fails loudly."""
    plain = make_task("tinystories_overfit", {"preset": "smoke", "data": "generator", "device": "cpu"})
    with pytest.raises(ValueError, match="made by task tinystories_overfit"):
        run(smoke(), plain.init(0), smoke().base_recipe(), 0, 4)


def test_bad_options_are_rejected():
    with pytest.raises(TaskOptionsError, match="preset"):
        make_task("tinystories_aux", {"preset": "gpu"})


def test_window_label_means_quoted_speech_is_visible():
    from searchmgr.tasks._stories import fixed_windows, has_dialogue, load_splits, train_tokenizer

    task = smoke()
    d, T = task.data, task.options.context
    tok, cached = train_tokenizer(load_splits("generator", 200, 40, 40).train, task.options.vocab_size)
    assert cached  # the task trained it already
    x, _, label, last = fixed_windows(d.train, 200, T, d.pad)
    seen = [has_dialogue(tok.decode(x[b, :last[b] + 1].tolist())) for b in range(len(x))]
    assert label.tolist() == [float(s) for s in seen]
    assert 0 < label.sum() < len(label)  # both classes occur
    assert (label <= d.train.dialogue[:200]).all()  # a visible quote implies a dialogue story
