"""Replaying an exported toy schedule from scratch reproduces the search's scores (bit for bit on CPU)."""

from __future__ import annotations

import json

import pytest

from searchmgr.cli import main
from searchmgr.config import ConfigError
from searchmgr.replay import parse_replay_overrides, replay
from searchmgr.schedule import Schedule, ScheduleError, export_schedule
from searchmgr.search import explore


@pytest.fixture(scope="module")
def schedule_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    # fixed path (3 x 20 steps) plus a few UCT nodes, so the best path need not be the fixed one
    explore(["task=toy", "preset=smoke", "seed=2", "budget.steps=140", f"out={out / 'run'}"])
    return export_schedule(out / "run").save(out / "schedule.json")


def test_same_seed_reproduces_the_search_exactly(schedule_path):
    schedule = Schedule.load(schedule_path)
    seen = []
    r = replay(schedule_path, on_eval=lambda step, m: seen.append(step))
    assert r.seed == schedule.provenance["seed"] == 2
    assert len(r.segments) == len(schedule.segments) == 3
    for got, seg in zip(r.segments, schedule.segments):
        assert got.replay_val == seg.val_score and got.search_val == seg.val_score  # bit for bit, every segment
        assert got.recipe == seg.recipe
    assert r.val == schedule.val_score and r.test == schedule.test_score
    assert r.val_diff == 0.0 and r.test_diff == 0.0 and r.exact
    assert seen == [10, 20, 30, 40, 50, 60]  # eval_every=10 from the provenance, on the global step axis
    text = r.render()
    assert "exact match" in text and f"{schedule.val_score:.6g}" in text
    d = r.to_dict()
    assert d["exact"] is True and d["val_diff"] == 0.0 and len(d["segments"]) == 3


def test_another_seed_differs_and_says_so(schedule_path):
    r = replay(schedule_path, ["seed=5"])
    assert r.seed == 5 and not r.exact
    assert r.val_diff is not None and r.val_diff != 0.0
    assert "not bit-exact" in r.render()


def test_overrides_are_checked():
    assert parse_replay_overrides(["seed=3", "preset=smoke", "eval_every=5"]) == (
        {"seed": 3, "eval_every": 5}, {"preset": "smoke"})
    for bad in (["seed=-1"], ["eval_every=0"], ["seed=x"], ["budget.steps=3"], ["seed"]):
        with pytest.raises(ConfigError):
            parse_replay_overrides(bad)


def test_bad_task_option_and_provenance(schedule_path, tmp_path):
    with pytest.raises(ConfigError, match="n_train|options"):
        replay(schedule_path, ["n_train=1"])
    data = json.loads(schedule_path.read_text())
    del data["provenance"]["segment_steps"]
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(ScheduleError, match="provenance lacks"):
        replay(tmp_path / "s.json")


def test_cli_replay(schedule_path, tmp_path, capsys):
    assert main(["replay", str(schedule_path), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "exact match" in out and "difference 0" in out
    assert json.loads((tmp_path / "r.json").read_text())["exact"] is True
    assert main(["replay", str(tmp_path / "nope.json")]) == 2
    assert "no schedule file" in capsys.readouterr().err


def test_a_task_built_differently_is_flagged(schedule_path, tmp_path, monkeypatch):
    from searchmgr.tasks.toy import ToyTask

    data = json.loads(schedule_path.read_text())
    data["provenance"]["info"] = {"n_params": 100, "data_source": "synthetic"}
    (tmp_path / "s.json").write_text(json.dumps(data))
    monkeypatch.setattr(ToyTask, "info", lambda self: {"n_params": 200, "data_source": "synthetic"})
    r = replay(tmp_path / "s.json")
    assert r.info_changes == {"n_params": (100, 200)}
    assert "n_params was 100, is 200" in r.render()
    assert replay(schedule_path).info_changes == {}
