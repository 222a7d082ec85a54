"""grpo_arith (smoke preset): rewards, trl's constraints on the surface, a segment's telemetry, exact resume."""

from __future__ import annotations

import io

import pytest
import torch

from searchmgr.decision import RejectionKind, verify
from searchmgr.surface import RecipeError
from searchmgr.tasks import make_task
from searchmgr.tasks._arith import Problem, correctness_reward, format_reward, held_out_sets, train_problem
from searchmgr.tasks.base import Segment

EOS = 1


@pytest.fixture(scope="module")
def task():
    return make_task("grpo_arith", {"preset": "smoke", "device": "cpu"})


def _roundtrip(checkpoint: dict) -> dict:
    """Through bytes, as the store keeps checkpoints."""
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=False)


def _run(task, checkpoint, recipe, start, steps, eval_every=2, stop_at=None):
    log = []

    def on_eval(step, metrics):
        log.append((step, dict(metrics)))
        return stop_at is not None and step >= stop_at

    result = task.train_segment(checkpoint, recipe, Segment(start, steps, 16, eval_every), on_eval)
    return result, log


@pytest.fixture(scope="module")
def straight(task):
    """Eight steps in one segment: the reference the resumed runs must reproduce."""
    return _run(task, task.init(0), task.base_recipe(), 0, 8)


# -- rewards ----------------------------------------------------------------------


def test_rewards_score_correct_wrong_and_malformed_completions():
    completions = ["42", " 42", "41", "4 2", "42+", "", "-7", "42"]
    ids = [[7, 5, EOS], [2, 7, 5, EOS], [7, 4, EOS], [7, 2, 5, EOS], [7, 5, 13, EOS], [EOS], [14, 10, EOS], [7, 5]]
    answers = ["42", "42", "42", "42", "42", "42", "-7", "42"]
    assert correctness_reward(completions, answer=answers) == [1, 1, 0, 0, 0, 0, 1, 1]
    # the last one is the right number but was truncated (no end token): bad format
    assert format_reward(completions, completion_ids=ids, eos_ids=[EOS]) == [1, 1, 1, 0, 0, 0, 1, 0]


def test_problems_answers_and_disjoint_held_out_sets():
    assert Problem(47, "-", 85).answer == "-38" and Problem(3, "+", 9).prompt(2) == "03+09="
    assert Problem(47, "-", 85).slipped == "38" and Problem(3, "+", 9).slipped == "12"  # the warm-up's sign slip
    val, test = held_out_sets(2, 200, 200)
    assert len(set(val)) == 200 and not set(val) & set(test)
    held = set(val) | set(test)
    stream = [train_problem(0, r, j, 2, held) for r in range(50) for j in range(8)]
    assert not set(stream) & held
    assert stream == [train_problem(0, r, j, 2, held) for r in range(50) for j in range(8)]  # a pure function


# -- the action surface mirrors trl's own checks ------------------------------------


def test_constraint_rejects_num_generations_that_trl_refuses(task):
    surface, base = task.surface, task.base_recipe()
    with pytest.raises(RecipeError, match=r"num_generations=5: num_generations must divide 12 \(the 12 completions of a step"):
        surface.check({**base, "num_generations": 5})
    verdict = verify({"diagnosis": "d", "control_audit": [], "expected_outcome": "e",
                      "updates": [{"knob": "num_generations", "op": "add", "value": 1}]}, surface, base)
    assert verdict.rejection.kind is RejectionKind.CONSTRAINT and "choose one of [2, 3, 4, 6, 12]" in verdict.rejection.reason
    below = verify({"diagnosis": "d", "control_audit": [], "expected_outcome": "e",
                    "updates": [{"knob": "num_generations", "op": "scale", "value": 0.25}]}, surface, base)
    assert below.rejection.kind is RejectionKind.OUT_OF_BOUNDS


def test_surface_accepts_exactly_the_generations_trl_accepts(task, tmp_path):
    from trl import GRPOConfig

    knob = task.surface["num_generations"]
    for g in range(int(knob.low), int(knob.high) + 1):
        try:
            task.surface.check({**task.base_recipe(), "num_generations": g})
            ours = True
        except RecipeError:
            ours = False
        try:
            GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], activation_checkpointing=False,
                       per_device_train_batch_size=task.preset.batch, num_generations=g)
            theirs = True
        except ValueError:
            theirs = False
        assert ours == theirs, g


# -- training ---------------------------------------------------------------------


def test_smoke_segment_trains_and_emits_the_telemetry(task, straight):
    result, log = straight
    assert [s for s, _ in log] == [2, 4, 6, 8] and not result.stopped and result.steps_done == 8
    first, last = log[0][1], log[-1][1]
    for key in ("train/reward_mean", "train/reward_std", "train/reward_correct", "train/reward_format", "train/kl",
                "train/entropy", "train/completion_length", "train/clipped_ratio", "train/frac_zero_std",
                "val/accuracy", "val/accuracy_unsigned"):
        assert key in first, key
    assert "test/accuracy" in last and "test/accuracy_unsigned" in last and "test/accuracy" not in first
    assert 0.0 <= last["val/accuracy"] <= 1.0
    assert result.checkpoint["step"] == 8
    root = task.init(0)["model"]
    assert any(not torch.equal(root[k], v) for k, v in result.checkpoint["model"].items())  # it really trained


def test_two_segments_resume_exactly_as_one(task, straight):
    (whole, whole_log), recipe = straight, task.base_recipe()
    first, log1 = _run(task, task.init(0), recipe, 0, 4)
    second, log2 = _run(task, _roundtrip(first.checkpoint), recipe, 4, 4)
    for k, v in whole.checkpoint["model"].items():
        assert torch.equal(v, second.checkpoint["model"][k]), k
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("test/")}  # noqa: E731
    assert [(s, strip(m)) for s, m in log1 + log2] == [(s, strip(m)) for s, m in whole_log]
    assert second.metrics == whole.metrics
    a, b = whole.checkpoint["optim"]["state"], second.checkpoint["optim"]["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)


def test_resume_inside_a_generation_round_is_exact(task, straight):
    # steps reuse each generation round twice (num_iterations=2): split after step 3, inside a round
    whole, recipe = straight[0], task.base_recipe()
    first, _ = _run(task, task.init(0), recipe, 0, 3, eval_every=3)
    assert first.checkpoint["trl_buffer"] is not None
    second, _ = _run(task, _roundtrip(first.checkpoint), recipe, 3, 5, eval_every=5)
    for k, v in whole.checkpoint["model"].items():
        assert torch.equal(v, second.checkpoint["model"][k]), k


def test_on_eval_true_stops_the_segment(task):
    result, log = _run(task, task.init(0), task.base_recipe(), 0, 6, stop_at=2)
    assert result.stopped and result.checkpoint is None and result.steps_done == 2 and len(log) == 1


def test_warm_up_is_the_same_model_whatever_the_callers_threads(tmp_path, monkeypatch):
    """The warm-up trains in a fresh one-thread process with deterministic ops: the same weights (fingerprint)
    whether the caller runs 1 or 2 torch threads, and the caller's settings are untouched."""
    import dataclasses
    import json

    import torch

    from searchmgr.tasks import _arith
    from searchmgr.tasks.grpo_arith import PRESETS

    spec = dataclasses.replace(make_task("grpo_arith", {"preset": "smoke"}).warm_spec(), steps=10)
    prints, before = [], torch.get_num_threads()
    for threads, cache in ((1, "a"), (2, "b")):
        monkeypatch.setenv("SEARCHMGR_CACHE", str(tmp_path / cache))
        torch.set_num_threads(threads)
        done = json.loads((_arith.warm_start(spec, log=lambda m: None) / "warmup.json").read_text())
        prints.append(done["fingerprint"])
        assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(before)
    assert prints[0] == prints[1] and len(prints[0]) == 16
    assert PRESETS["default"].warmup_target >= 1.0  # the default warm-up runs a fixed number of steps
