"""select.reevaluate: the top complete schedules evaluated afresh name the best; the search trains the same nodes."""

from __future__ import annotations

import pytest

from searchmgr import selection
from searchmgr import tree as T
from searchmgr.analysis import load_run
from searchmgr.config import ConfigError, build_config
from searchmgr.objective import Direction, Family, Objective
from searchmgr.rundir import open_run
from searchmgr.schedule import export_schedule
from searchmgr.search import explore, resolve
from searchmgr.store import EventKind, Node, NodeStatus
from searchmgr.tasks import Task
from searchmgr.tasks.toy import ToyTask

LOSS = Objective("val/loss", Direction.MINIMIZE, "test/loss")
SMOKE = ["threads=1", "seed=0"]
OPTS = ToyTask.Options(preset="smoke")


def _node(i: int, val: float, depth: int = 2) -> Node:
    return Node(id=i, search_id=1, parent_id=0, depth=depth, start_step=0, end_step=10 * depth, recipe={},
                status=NodeStatus.DONE, source="heuristic", val_score=val, test_score=None, utility=-val, visits=1,
                value_sum=0.0, steps_trained=10, train_s=None, checkpoint="c", checkpoint_sha256=None,
                decision_id=None, error=None, created_at=0.0, finished_at=0.0)


def test_fresh_scores_reorder_only_the_reevaluated_top():
    nodes = [_node(1, 0.30), _node(2, 0.31), _node(3, 0.32), _node(4, 0.20, depth=1)]  # 4 is not complete
    assert [n.id for n in T.ranked_leaves(nodes, LOSS, 2)] == [1, 2, 3]
    assert [n.id for n in T.ranked_leaves(nodes, LOSS, 2, {1: 0.50, 2: 0.40})] == [2, 1, 3]
    assert T.best_leaf(nodes, LOSS, 2, {1: 0.50, 2: 0.40}).id == 2
    # a selection that no longer covers the current top (the tree grew since) does not hold
    assert T.best_leaf(nodes + [_node(5, 0.10)], LOSS, 2, {1: 0.50, 2: 0.40}).id == 5


class NoisyToy(ToyTask):
    """The toy task whose fresh evaluations prefer the schedule the search ranked last of the top three."""

    family = Family.RL

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        return {"val/loss": -super().evaluate_checkpoint(checkpoint, seed)["val/loss"]}


class RlToyWithoutEvaluate(ToyTask):
    family = Family.RL
    evaluate_checkpoint = Task.evaluate_checkpoint  # the contract's default: unsupported


def _trained(run) -> list[tuple]:
    with open_run(run) as store:
        return [(n.id, n.parent_id, n.status, n.recipe, n.val_score) for n in store.nodes(store.search()["id"])]


def test_reevaluation_names_the_best_and_trains_the_same_nodes(tmp_path):
    plain = explore(SMOKE + ["select.reevaluate=0", f"out={tmp_path / 'plain'}"], task=NoisyToy(OPTS))
    out = explore(SMOKE + ["select.repeats=2", f"out={tmp_path / 'sel'}"], task=NoisyToy(OPTS))
    run = tmp_path / "sel"
    assert _trained(run) == _trained(tmp_path / "plain")  # the option never changes what the search trains
    with open_run(run) as store:
        sid = store.search()["id"]
        record = selection.recorded(store, sid)
        events = [e for e in store.events(sid) if e["kind"] == EventKind.REEVALUATED.value]
        nodes = store.nodes(sid)
        assert store.search()["config"]["select"] == {"reevaluate": 3, "repeats": 2}  # on by default for RL
    assert len(events) == 1 and len(record["nodes"]) == 3 and len(record["seeds"]) == 2
    top3 = [n.id for n in T.ranked_leaves(nodes, LOSS, 3)[:3]]
    assert sorted(map(int, record["nodes"])) == sorted(top3)
    for v in record["nodes"].values():
        assert len(v["scores"]) == 2 and v["mean"] == pytest.approx(sum(v["scores"]) / 2)
    fresh_best = min(record["nodes"], key=lambda i: record["nodes"][i]["mean"])
    assert int(fresh_best) != top3[0]  # the negated fresh loss prefers another schedule than validation
    assert plain.best.id == top3[0]
    # everyone names the same best: the search's outcome, the export, the report's data
    assert out.best.id == int(fresh_best) == export_schedule(run).segments[-1].node_id == load_run(run).best_leaf().id
    from searchmgr.analysis.report import write_report

    md = write_report(run, tmp_path / "report").markdown.read_text()
    assert "## Selection" in md and f"| {fresh_best} | " in md and md.split(f"| {fresh_best} | ")[1].split("\n")[0].endswith("| yes |")


def test_defaults_by_family_and_unsupported_tasks(tmp_path):
    def resolved(task, **select):
        config = build_config({"task": "toy", "out": str(tmp_path / "x"), "select": select})
        return resolve(config, task)[0].select.reevaluate

    assert resolved(ToyTask(OPTS)) == 0  # supervised: off
    assert resolved(NoisyToy(OPTS)) == 3  # RL that can re-evaluate: on
    assert resolved(RlToyWithoutEvaluate(OPTS)) == 0  # RL that cannot: off (nothing to call)
    assert resolved(ToyTask(OPTS), reevaluate=2) == 2
    with pytest.raises(ConfigError, match="does not implement evaluate_checkpoint"):
        resolved(RlToyWithoutEvaluate(OPTS), reevaluate=2)


def test_toy_fresh_evaluations_differ_by_seed_and_repeat_exactly():
    task = ToyTask(OPTS)
    ck = task.init(0)
    a, b = task.evaluate_checkpoint(ck, 1), task.evaluate_checkpoint(ck, 2)
    assert a != b and a == task.evaluate_checkpoint(ck, 1)
    assert not RlToyWithoutEvaluate(OPTS).evaluates_checkpoints and task.evaluates_checkpoints


def test_the_contracts_default_says_it_is_unsupported():
    from searchmgr.tasks.base import EvaluationUnsupported

    with pytest.raises(EvaluationUnsupported, match="does not implement evaluate_checkpoint"):
        RlToyWithoutEvaluate(OPTS).evaluate_checkpoint({}, 0)


@pytest.mark.slow
def test_grpo_arith_evaluates_a_checkpoint_on_fresh_problems():
    from searchmgr.tasks import make_task

    task = make_task("grpo_arith", {"preset": "smoke", "device": "cpu"})
    ck = task.init(0)
    a = task.evaluate_checkpoint(ck, 1)
    assert 0.0 <= a["val/accuracy"] <= 1.0 and a == task.evaluate_checkpoint(ck, 1)
    assert task.evaluates_checkpoints


def test_arm_reevaluates_on_fresh_episodes_and_is_on_by_default(tmp_path):
    from searchmgr.tasks import load_task

    task = load_task("arm_reckless", {"preset": "smoke"})
    ck = task.init(0)
    a = task.evaluate_checkpoint(ck, 1)
    assert {"val/safe_success", "val/final_dist", "val/return"} <= set(a) and a == task.evaluate_checkpoint(ck, 1)
    assert a != task.evaluate_checkpoint(ck, 2)
    config = build_config({"task": "arm_reckless", "task_options": {"preset": "smoke"}, "out": str(tmp_path / "x")})
    assert resolve(config)[0].select.reevaluate == 3  # RL: on by default


def test_a_run_made_without_the_option_says_why_it_cannot_reevaluate(tmp_path):
    explore(SMOKE + ["select.reevaluate=0", f"out={tmp_path / 'r'}"], task=ToyTask(OPTS))
    said = []
    with open_run(tmp_path / "r") as store:
        sid = store.search()["id"]
        nodes = store.nodes(sid)
        got = selection.reevaluate(store, sid, tmp_path / "r", ToyTask(OPTS), nodes, k=3, repeats=1, max_depth=3,
                                   run_seed=0, say=said.append)
        assert got == {} and selection.recorded(store, sid) == {}
    assert len(said) == 1 and "still have a checkpoint" in said[0]  # retention kept only the best one
