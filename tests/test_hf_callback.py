"""ScheduleCallback on a real (tiny, config-built) GPT-2 trained a few Trainer steps on CPU: the optimizer's
learning rate and weight decay and the model's dropout follow the schedule at the switch steps."""

from __future__ import annotations

import math

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from searchmgr.hf import ScheduleCallback  # noqa: E402
from searchmgr.schedule import Schedule, ScheduleSegment  # noqa: E402

SEGMENTS = ((0, 3, {"lr": 1e-3, "dropout": 0.0, "weight_decay": 0.0, "other": 1.0}),
            (3, 6, {"lr": 5e-4, "dropout": 0.2, "weight_decay": 0.1, "other": 2.0}),
            (6, 8, {"lr": 2e-4, "dropout": 0.1, "weight_decay": 0.3, "other": 3.0}))
STEPS = 10  # two steps past the horizon: the last recipe stays


def make_schedule() -> Schedule:
    return Schedule("toy", tuple(ScheduleSegment(a, b, r) for a, b, r in SEGMENTS))


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, n: int = 64, length: int = 16, vocab: int = 64):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, length), generator=g)  # (n, T)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Probe(TrainerCallback):
    """After each optimizer update (before the scheduler steps): what the update actually used."""

    def __init__(self):
        self.seen: list[dict] = []

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        drops = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
        self.seen.append({"step": state.global_step, "lrs": [g["lr"] for g in optimizer.param_groups],
                          "wds": [g["weight_decay"] for g in optimizer.param_groups], "dropout": drops,
                          "scheduler_lr": kwargs["lr_scheduler"].get_last_lr()[0]})


def train(tmp_path, callback: ScheduleCallback, **kw) -> Probe:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=4,
                             learning_rate=kw.pop("learning_rate", 1e-2), report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, **kw)
    probe = Probe()
    Trainer(model=model, args=args, train_dataset=RandomTokens(), callbacks=[callback, probe]).train()
    assert len(probe.seen) == STEPS
    return probe


def test_absolute_mode_follows_the_schedule_at_every_switch(tmp_path):
    schedule = make_schedule()
    cb = ScheduleCallback(schedule)
    assert cb.mapping == {"dropout": "dropout", "lr": "lr", "weight_decay": "weight_decay"}
    assert cb.ignored == ["other"]
    probe = train(tmp_path, cb, lr_scheduler_type="linear", weight_decay=0.05)
    for seen in probe.seen:
        s = seen["step"]  # on_optimizer_step runs before global_step += 1: this is update s (0-based)
        want = schedule.recipe_at(s)
        assert all(math.isclose(lr, want["lr"]) for lr in seen["lrs"]), (s, seen)
        # the trainer's linear scheduler (from 1e-2) is overridden: its value is not what the update used
        assert not math.isclose(seen["scheduler_lr"], seen["lrs"][0]), (s, seen)
        assert seen["dropout"] == {want["dropout"]}, (s, seen)
        decayed, no_decay = seen["wds"]  # the Trainer's split: matrices decayed, biases / LayerNorm not
        assert math.isclose(decayed, want["weight_decay"]) and no_decay == 0.0, (s, seen)
    lrs = [p["lrs"][0] for p in probe.seen]
    assert lrs[2] == 1e-3 and lrs[3] == 5e-4 and lrs[5] == 5e-4 and lrs[6] == 2e-4 and lrs[9] == 2e-4
    assert [s for s, _ in cb.switches] == [0, 3, 6]
    assert cb.switches[1][1] == {"lr": 5e-4, "weight_decay": 0.1, "dropout": 0.2}


def test_scale_mode_keeps_the_trainers_shape(tmp_path):
    schedule = make_schedule()
    cb = ScheduleCallback(schedule, lr_mode="scale")
    base = 1e-2
    probe = train(tmp_path, cb, lr_scheduler_type="linear", learning_rate=base)
    for seen in probe.seen:
        s = seen["step"]
        factor = seen["scheduler_lr"] / base  # the linear decay's factor for update s
        assert math.isclose(factor, 1 - s / STEPS, rel_tol=1e-6)
        assert math.isclose(seen["lrs"][0], schedule.recipe_at(s)["lr"] * factor, rel_tol=1e-9), (s, seen)


def test_all_groups_zero_weight_decay_uses_the_matrix_rule_and_step_scale(tmp_path):
    schedule = make_schedule()
    cb = ScheduleCallback(schedule, step_scale=0.5)  # schedule step = update // 2: the switch at 3 comes at update 6
    probe = train(tmp_path, cb, lr_scheduler_type="constant", weight_decay=0.0)
    for seen in probe.seen:
        s = seen["step"]
        want = schedule.recipe_at(int(s * 0.5))
        assert seen["lrs"] == [want["lr"]] * 2
        assert seen["wds"] == [want["weight_decay"], 0.0]
    assert [s for s, _ in cb.switches] == [0, 6]


def test_knob_map_and_bad_arguments():
    seg = ScheduleSegment(0, 4, {"actor_lr": 1e-3, "p_drop": 0.1})
    cb = ScheduleCallback(Schedule("x", (seg,)), knob_map={"actor_lr": "lr", "p_drop": "dropout"})
    assert cb.values_at(2) == {"lr": 1e-3, "dropout": 0.1}
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)
    assert cb.apply(0, model, opt) == {"lr": 1e-3, "dropout": 0.1}
    assert model[1].p == 0.1 and opt.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="map onto"):
        ScheduleCallback(Schedule("x", (seg,)), knob_map={"actor_lr": "momentum"})
    with pytest.raises(ValueError, match="several schedule knobs"):
        ScheduleCallback(Schedule("x", (ScheduleSegment(0, 4, {"lr": 1.0, "learning_rate": 2.0}),)))
    with pytest.raises(ValueError, match="lr_mode"):
        ScheduleCallback(Schedule("x", (seg,)), lr_mode="relative")
