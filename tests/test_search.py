import json
import math

import pytest

from searchmgr import tree as T
from searchmgr.config import ConfigError
from searchmgr.schedule import Schedule, export_schedule
from searchmgr.search import explore, resume_run
from searchmgr.store import NodeStatus, TreeStore
from searchmgr.surface import same_recipe


def run_toy(tmp_path, *words, name="run"):
    out = tmp_path / name
    outcome = explore(["task=toy", "preset=smoke", f"out={out}", *words])
    return out, outcome


def nodes_of(run):
    with TreeStore(run / "tree.db") as s:
        return s.nodes(s.search()["id"])


def test_explore_grows_fixed_path_and_respects_budget(tmp_path):
    run, outcome = run_toy(tmp_path, "budget.steps=200")
    nodes = nodes_of(run)
    fixed = T.fixed_path(nodes)
    assert [n.depth for n in fixed] == [0, 1, 2, 3]  # the fixed baseline reaches the horizon
    assert all(same_recipe(n.recipe, fixed[0].recipe) for n in fixed)
    assert T.steps_used(nodes) <= 200 and outcome.steps_used == T.steps_used(nodes)
    assert all(n.status.finished for n in nodes)
    # every child starts where its parent ended
    index = T.by_id(nodes)
    for n in nodes[1:]:
        assert n.start_step == index[n.parent_id].end_step and n.depth == index[n.parent_id].depth + 1
    # the best complete schedule is at least as good as the fixed recipe (the fixed leaf is a candidate)
    assert outcome.best.val_score <= outcome.fixed.val_score
    assert outcome.best.depth == 3
    # visits at the root count every finished non-root segment
    assert index[1].visits == sum(1 for n in nodes if n.depth > 0)


def test_same_seed_gives_the_same_tree(tmp_path):
    a, _ = run_toy(tmp_path, "budget.steps=160", name="a")
    b, _ = run_toy(tmp_path, "budget.steps=160", name="b")
    ka = [(n.parent_id, n.recipe, n.status, n.val_score) for n in nodes_of(a)]
    kb = [(n.parent_id, n.recipe, n.status, n.val_score) for n in nodes_of(b)]
    assert ka == kb


def test_resume_continues_without_retraining(tmp_path):
    run, first = run_toy(tmp_path, "budget.steps=100")  # the shipped search defaults
    before = {n.id: n for n in nodes_of(run)}
    second = explore(["budget.steps=200", "manager.name=random"], resume=run)
    after = {n.id: n for n in nodes_of(run)}
    for nid, n in before.items():  # finished nodes unchanged
        assert after[nid].status == n.status and after[nid].val_score == n.val_score
        assert after[nid].finished_at == n.finished_at
    assert len(after) > len(before)
    assert second.steps_used <= 200 and second.steps_used > first.steps_used
    assert any(n.source == "random" for n in after.values())


def test_the_older_search_settings_still_run(tmp_path, toy_surface):
    # the settings before today's defaults, each still selectable: the fixed schedule grown before anything else
    # (uct.fixed=first), no endgame (uct.finish=false), root children one bounded step from the base recipe
    # (uct.start=bounded), every child from the manager (uct.hold_first=false), a child's mean utility as Q
    # (uct.q=mean), no widening (uct.widen=0), the stopper's margin alone (stopper.noise=false), the rules'
    # manager (manager.name=heuristic)
    old = ["uct.fixed=first", "uct.finish=false", "uct.start=bounded", "uct.hold_first=false", "uct.q=mean",
           "uct.widen=0", "stopper.noise=false", "manager.name=heuristic"]
    run, outcome = run_toy(tmp_path, "budget.steps=200", *old)
    with TreeStore(run / "tree.db") as s:
        config = s.search()["config"]
    uct = config["uct"]
    assert (uct["fixed"], uct["finish"], uct["start"], uct["hold_first"], uct["q"], uct["widen"],
            config["stopper"]["noise"]) == ("first", False, "bounded", False, "mean", 0, False)
    nodes = nodes_of(run)
    assert [n.id for n in T.fixed_path(nodes)] == [1, 2, 3, 4]  # the whole fixed schedule first
    searched = [n for n in nodes if n.source not in (T.ROOT, T.FIXED)]
    assert len(searched) >= 3 and {n.source for n in searched} == {"heuristic"}  # no start, hold or finish nodes
    index, knobs = T.by_id(nodes), {k.name: k for k in toy_surface.knobs}
    for n in searched:  # every child one bounded step from its parent (no start point spread over the range)
        parent = index[n.parent_id].recipe
        assert all(knobs[k].step_ok(parent[k], v) for k, v in n.recipe.items()), n
    assert outcome.steps_used <= 200 and outcome.best.depth == 3


def test_resume_refuses_task_and_surface_changes(tmp_path, monkeypatch):
    run, _ = run_toy(tmp_path, "budget.steps=60")
    with pytest.raises(ConfigError, match="cannot change task"):
        resume_run(run, {"task": "tinystories_overfit"})
    with pytest.raises(ConfigError, match="task options"):
        resume_run(run, {"task_options": {"noise": 0.1}})
    from searchmgr.surface import ActionSurface

    monkeypatch.setattr(ActionSurface, "fingerprint", lambda self: "changed")
    with pytest.raises(ConfigError, match="action surface"):
        resume_run(run, {})


def test_config_errors_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'nope'.*toy"):
        explore(["task=nope", f"out={tmp_path / 'x'}"])
    with pytest.raises(ConfigError, match="cannot pay for the fixed baseline"):
        explore(["task=toy", "preset=smoke", "budget.steps=10", f"out={tmp_path / 'y'}"])
    with pytest.raises(ConfigError, match="manager"):
        explore(["task=toy", "manager.name=oracle", f"out={tmp_path / 'z'}"])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "tree.db").exists()


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run, _ = run_toy(tmp_path, "budget.steps=60")
    with pytest.raises(ConfigError, match="already holds a run"):
        run_toy(tmp_path, "budget.steps=60")


def test_node_budget_and_pruning(tmp_path):
    run, outcome = run_toy(tmp_path, "budget.nodes=5", "budget.steps=1000", "eval_every=4")
    nodes = nodes_of(run)
    assert sum(1 for n in nodes if n.depth > 0) == 5
    assert "node budget" in outcome.stop_reason
    for n in nodes:
        if n.status is NodeStatus.PRUNED:
            assert n.steps_trained < n.end_step - n.start_step and n.checkpoint is None


def test_export_schedule(tmp_path):
    run, outcome = run_toy(tmp_path, "budget.steps=200")
    sched = export_schedule(run)
    path = sched.save(tmp_path / "schedule.json")
    data = json.loads(path.read_text())
    assert data["task"] == "toy" and data["horizon"] == 60
    assert [s["start_step"] for s in data["segments"]] == [0, 20, 40]
    assert data["val_score"] == pytest.approx(outcome.best.val_score)
    assert data["provenance"]["leaf_node"] == outcome.best.id
    assert all(s["decision"]["diagnosis"] for s in data["segments"])
    loaded = Schedule.load(path)
    assert loaded.recipe_at(0) == data["segments"][0]["recipe"]
    assert loaded.recipe_at(45) == data["segments"][2]["recipe"]
    assert loaded.recipe_at(10_000) == data["segments"][2]["recipe"]


def test_failed_segment_is_recorded_and_search_goes_on(tmp_path, monkeypatch):
    from searchmgr.tasks.toy import ToyTask

    real = ToyTask.train_segment
    calls = {"n": 0}

    def flaky(self, checkpoint, recipe, segment, on_eval):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated out-of-memory")
        return real(self, checkpoint, recipe, segment, on_eval)

    monkeypatch.setattr(ToyTask, "train_segment", flaky)
    run, outcome = run_toy(tmp_path, "budget.steps=160")
    failed = [n for n in nodes_of(run) if n.status is NodeStatus.FAILED]
    assert len(failed) == 1 and "simulated out-of-memory" in failed[0].error
    assert outcome.best is not None


def test_diverged_segment_fails(tmp_path, monkeypatch):
    from searchmgr.tasks.base import SegmentResult
    from searchmgr.tasks.toy import ToyTask

    real = ToyTask.train_segment

    def nan_on_random(self, checkpoint, recipe, segment, on_eval):
        r = real(self, checkpoint, recipe, segment, on_eval)
        if recipe["lr"] != 1e-3:
            return SegmentResult(r.checkpoint, r.steps_done, {**r.metrics, "val/loss": math.nan}, r.stopped)
        return r

    monkeypatch.setattr(ToyTask, "train_segment", nan_on_random)
    run, _ = run_toy(tmp_path, "budget.steps=140")
    failed = [n for n in nodes_of(run) if n.status is NodeStatus.FAILED]
    assert failed and all("diverged" in n.error for n in failed)
