"""tinystories_overfit: data sources, tokenizer cache, options, and exact resume (smoke preset)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from searchmgr.tasks import TaskOptionsError, make_task
from searchmgr.tasks._gpt import GPT, GPTConfig
from searchmgr.tasks._stories import EOT, generate_stories, has_dialogue, load_splits, load_tokens, read_stories
from searchmgr.tasks.base import Segment
from stories_common import _isolated, run  # noqa: F401  (autouse fixture)
from searchmgr.tasks.tinystories import PRESETS

SAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "tinystories_sample.txt"


def smoke(**options):
    return make_task("tinystories_overfit", {"preset": "smoke", "data": "generator", "device": "cpu", **options})


# ------------------------------------------------------------------ training and resume


def test_smoke_segment_reports_metrics():
    task = smoke()
    result, log = run(task, task.init(0), task.base_recipe(), 0, 8)
    assert [s for s, _ in log] == [4, 8]
    final = result.metrics
    for key in ("train/loss", "val/loss", "train/running_loss", "train/lr", "test/loss"):
        assert math.isfinite(final[key]), key
    assert "test/loss" not in log[0][1]  # test only at the segment's last evaluation
    assert final["train/loss"] < math.log(task.data.vocab_size)  # it learned something
    assert result.checkpoint["step"] == 8 and not result.stopped
    assert task.info()["data_source"] == "generator(seed=0)"


def test_two_segments_equal_one_long_segment():
    task = smoke()
    recipe = {"lr": 3e-3, "dropout": 0.1, "weight_decay": 0.1}  # dropout on: the RNG state must resume too
    root = task.init(0)
    one, log_one = run(task, root, recipe, 0, 8)
    first, _ = run(task, root, recipe, 0, 4)
    second, log_two = run(task, first.checkpoint, recipe, 4, 4)
    assert log_two[-1][1] == log_one[-1][1]  # identical losses, lr and test loss
    for k, v in one.checkpoint["model"].items():
        assert torch.equal(v, second.checkpoint["model"][k]), k
    assert torch.equal(one.checkpoint["rng"]["sampler"], second.checkpoint["rng"]["sampler"])


def test_stopping_returns_partial_result():
    task = smoke()
    result = task.train_segment(task.init(0), task.base_recipe(), Segment(0, 8, 16, 4), lambda s, m: True)
    assert result.stopped and result.steps_done == 4 and result.checkpoint is None
    assert "val/loss" in result.metrics


def test_segment_must_start_where_the_checkpoint_is():
    task = smoke()
    with pytest.raises(ValueError, match="starts at 4"):
        run(task, task.init(0), task.base_recipe(), 4, 4)


def test_recipe_outside_the_surface_is_refused():
    task = smoke()
    with pytest.raises(ValueError, match="dropout"):
        run(task, task.init(0), {"lr": 1e-3, "dropout": 0.9, "weight_decay": 0.0}, 0, 4)


def test_dropout_change_takes_effect():
    cfg = GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = GPT(cfg)
    model.set_dropout(0.3)
    ps = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert ps and all(p == 0.3 for p in ps)
    assert all(b.attn.attn_dropout == 0.3 for b in model.blocks)
    x = torch.randint(0, 64, (2, 16))
    model.train()
    torch.manual_seed(0)
    a, _ = model(x)
    b, _ = model(x)
    assert not torch.allclose(a, b)  # dropout active in training mode
    model.set_dropout(0.0)
    assert torch.allclose(model(x)[0], model(x)[0])
    with pytest.raises(ValueError):
        model.set_dropout(1.0)


def test_task_applies_recipe_dropout_and_weight_decay():
    task = smoke()
    model, opt, _ = task._restore(task.init(0), {"lr": 1e-3, "dropout": 0.25, "weight_decay": 0.5})
    assert all(m.p == 0.25 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    assert opt.param_groups[0]["weight_decay"] == 0.5 and opt.param_groups[1]["weight_decay"] == 0.0


# ------------------------------------------------------------------ data sources


@pytest.mark.skipif(not SAMPLE.is_file(), reason="shared/data/tinystories_sample.txt is absent")
def test_real_text_file_loads():
    stories = read_stories(SAMPLE)
    assert len(stories) > 2600 and all(EOT not in s for s in stories)
    assert 0.3 < sum(map(has_dialogue, stories)) / len(stories) < 0.7
    splits = load_splits(str(SAMPLE), 2000, 300, 300)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2000, 300, 300)
    assert not set(splits.train) & set(splits.val) and not set(splits.val) & set(splits.test)
    assert splits.source == f"file:{SAMPLE.resolve()}"
    task = make_task("tinystories_overfit", {"preset": "smoke", "data": str(SAMPLE), "device": "cpu"})
    result, _ = run(task, task.init(0), task.base_recipe(), 0, 4)
    assert math.isfinite(result.metrics["val/loss"])
    assert task.info()["data_source"].startswith("file:")


def test_jsonl_file_loads(tmp_path):
    path = tmp_path / "stories.jsonl"
    with open(path, "w") as f:
        for s in generate_stories(300, seed=7):
            f.write(json.dumps({"text": s, "id": 1}) + "\n")
    splits = load_splits(str(path), 200, 40, 40)
    assert splits.source == f"file:{path.resolve()}" and len(splits.test) == 40
    task = smoke(data=str(path))
    assert task.info()["data_source"].startswith("file:") and task.info()["train_stories"] == 200


def test_parquet_file_loads(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "stories.parquet"
    pq.write_table(pa.table({"text": generate_stories(300, seed=8)}), path)
    assert len(read_stories(path)) == 300
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"story": ["x" * 30]}), bad)
    with pytest.raises(ValueError, match="no 'text' column"):
        read_stories(bad)


def test_generator_is_deterministic_and_varied():
    a, b = generate_stories(400, seed=3), generate_stories(400, seed=3)
    assert a == b and a != generate_stories(400, seed=4)
    assert len(set(a)) == 400
    share = sum(map(has_dialogue, a)) / len(a)
    assert 0.4 < share < 0.6  # about half carry quoted speech
    splits = load_splits(None, 200, 40, 40)  # HF_HUB_OFFLINE=1: straight to the generator
    assert splits.source == "generator(seed=0)"


def test_hub_is_used_when_reachable(monkeypatch):
    import searchmgr.tasks._stories as stories

    monkeypatch.setattr(stories, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(stories, "load_hub_stories", lambda: generate_stories(300, seed=5))
    assert load_splits(None, 200, 40, 40).source.startswith("hub:roneneldan/TinyStories")

    def broken():
        raise OSError("connection reset")

    monkeypatch.setattr(stories, "load_hub_stories", broken)
    with pytest.warns(UserWarning, match="connection reset"):
        assert load_splits(None, 200, 40, 40).source == "generator(seed=0)"


def test_offline_setting_skips_the_hub_probe(monkeypatch):
    import searchmgr.tasks._stories as stories

    def no_network(*args, **kwargs):
        raise AssertionError("the hub must not be probed when HF_HUB_OFFLINE=1")

    monkeypatch.setattr(stories.socket, "create_connection", no_network)
    assert stories.hub_reachable() is False


def test_too_few_stories_says_how_to_fix(tmp_path):
    path = tmp_path / "few.txt"
    path.write_text(f"\n{EOT}\n".join(generate_stories(50, seed=1)))
    with pytest.raises(ValueError, match="lower n_train"):
        load_splits(str(path), 200, 40, 40)


def test_tokenizer_and_tokens_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHMGR_CACHE", str(tmp_path))  # an empty cache
    first = load_tokens("generator", 200, 40, 40, 384)
    second = load_tokens("generator", 200, 40, 40, 384)
    assert not first.tokenizer_cached and not first.tokens_cached
    assert second.tokenizer_cached and second.tokens_cached
    assert torch.equal(first.train.tokens, second.train.tokens)
    other = load_tokens("generator", 200, 40, 40, 400)  # another vocabulary size: another tokenizer
    assert not other.tokenizer_cached
    assert len(list((tmp_path / "tokenizers").glob("*.json"))) == 2


# ------------------------------------------------------------------ options


@pytest.mark.parametrize("options, message", [
    ({"preset": "huge"}, "preset"),
    ({"batch_size": 0}, "batch_size"),
    ({"data": "/no/such/file.txt"}, "does not exist"),
    ({"data": "stories.csv"}, ".txt, .jsonl or .parquet"),
    ({"device": "gpu"}, "device must be"),
    ({"colour": "red"}, "colour"),
])
def test_options_reject_bad_input(options, message):
    with pytest.raises(TaskOptionsError, match=message):
        make_task("tinystories_overfit", options)


def test_options_fill_from_preset():
    task = smoke(batch_size=3)
    assert task.options.batch_size == 3 and task.options.context == PRESETS["smoke"].context
    cpu = make_task("tinystories_overfit", {"preset": "cpu", "device": "cpu"})
    assert cpu.options.context == PRESETS["cpu"].context and cpu.search_defaults().max_depth >= 2
    assert make_task("tinystories_overfit", {"device": "cpu"}).options.preset == (
        "paper" if torch.cuda.is_available() else "cpu")
