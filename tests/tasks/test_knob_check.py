"""Knobs that act: check_task and `searchmgr check` report a knob whose change leaves training bit-identical."""

import pytest

from searchmgr.cli import main
from searchmgr.tasks import load_task
from searchmgr.tasks.testing import KnobVerdict, TaskCheckFailed, check_knobs, check_task

# issue 28's GPT: attention reads dropout as a plain float kept from the config, while the task sets nn.Dropout.p
PLUGIN = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from searchmgr.surface import ActionSurface, Knob, Role, Scale
from searchmgr.tasks import Direction, Family, Objective, SearchDefaults, SegmentResult, Task


class Net(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 32), nn.Linear(32, 1)
        self.drop = nn.Dropout(0.0)  # defined, never used in forward
        self.p = dropout  # what forward reads

    def forward(self, x):
        return self.fc2(F.dropout(torch.relu(self.fc1(x)), self.p, self.training))


class Wired(Task):
    name = "wired"
    family = Family.SUPERVISED
    objective = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    description = "An MLP regresses a smooth function; dropout should regularise it."

    @property
    def surface(self):
        return ActionSurface((Knob("lr", 1e-3, 1e-1, Scale.LOG, 1.0, Role.OPTIMIZER, "SGD learning rate"),
                              Knob("dropout", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "hidden dropout")))

    def base_recipe(self):
        return {"lr": 0.01, "dropout": 0.1}

    def search_defaults(self):
        return SearchDefaults(segment_steps=10, max_depth=2, budget_steps=60, eval_every=5)

    def init(self, seed):
        torch.manual_seed(seed)
        return {"model": Net(0.1).state_dict(), "rng": torch.get_rng_state()}

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(64, 4, generator=g)
        y = torch.sin(x).sum(-1, keepdim=True)
        model = Net(0.1)
        model.load_state_dict(checkpoint["model"])
        torch.set_rng_state(checkpoint["rng"])
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = recipe["dropout"]
        APPLY
        opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"])
        metrics = {}
        for i in range(1, segment.steps + 1):
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % segment.eval_every == 0 or i == segment.steps:
                model.eval()
                with torch.no_grad():
                    metrics = {"train/loss": loss.item(), "val/loss": F.mse_loss(model(x[:32]), y[:32]).item(),
                               "hp/dropout": recipe["dropout"]}
                    if i == segment.steps:
                        metrics["test/loss"] = F.mse_loss(model(x[32:]), y[32:]).item()
                model.train()
                if on_eval(segment.start_step + i, metrics) and i < segment.steps:
                    return SegmentResult(None, i, metrics, stopped=True)
        return SegmentResult({"model": model.state_dict(), "rng": torch.get_rng_state()}, segment.steps, metrics)
'''


def _plugin(tmp_path, apply="pass"):
    path = tmp_path / "wired_task.py"
    path.write_text(PLUGIN.replace("APPLY", apply))
    return f"{path}:Wired"


def test_check_task_reports_a_dropout_knob_that_is_never_applied(tmp_path):
    ref = _plugin(tmp_path)
    with pytest.raises(TaskCheckFailed, match=r"knobs that change nothing: dropout \[0 \.\. 0\.5\]: .*read once at "
                                              r"init .* nn\.Dropout\.p"):
        check_task(load_task(ref))
    found = {k.knob: k for k in check_knobs(load_task(ref))}
    assert found["lr"].verdict is KnobVerdict.ACTS and found["dropout"].verdict is KnobVerdict.INERT


def test_the_same_task_passes_once_dropout_is_set_where_forward_reads_it(tmp_path):
    found = check_task(load_task(_plugin(tmp_path, apply='model.p = recipe["dropout"]')))
    assert [k.verdict for k in found["knobs"]] == [KnobVerdict.ACTS, KnobVerdict.ACTS]


def test_searchmgr_check_prints_the_report_and_fails_on_an_inert_knob(tmp_path, capsys):
    assert main(["check", _plugin(tmp_path), "steps=4"]) == 1
    out = capsys.readouterr().out
    assert "contract: kept" in out and "knob lr [0.001 .. 0.1]: acts" in out
    assert "knob dropout [0 .. 0.5]: inert" in out and "1 knob(s) change nothing: ['dropout']" in out
    assert main(["check", "task=toy", "preset=smoke"]) == 0
    assert "every knob acts" in capsys.readouterr().out
    assert main(["check", "toy", "preset=nope"]) == 2  # a bad option is a user error, as for explore
