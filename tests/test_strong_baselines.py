"""asha, hyperband and pb2: golden decisions on hand-made trees, and smoke runs through `searchmgr compare`
(within budget, resume to the same tree as an uninterrupted run, bad settings refused before training)."""

import random

import numpy as np
import pytest

from searchmgr.budget import Budget
from searchmgr.compare import compare
from searchmgr.config import ConfigError, build_config
from searchmgr.objective import Direction, Objective
from searchmgr.policies import Grow, Wait, make_policy
from searchmgr.policies import asha, pb2
from searchmgr.search import explore, resolve
from searchmgr.store import Node, NodeStatus, TreeStore
from searchmgr.surface import ActionSurface, Knob, Role, Scale

SMOKE = ["task=toy", "preset=smoke", "threads=1"]
OBJ = Objective("val/loss", Direction.MINIMIZE, "test/loss")
METHODS = ("asha", "hyperband", "pb2")


def node(id, parent, depth, val=None, recipe=None, status=NodeStatus.DONE, finished=0.0, source="asha", seg=10):
    return Node(id, 1, parent, depth, (depth - 1) * seg if depth else 0, depth * seg, dict(recipe or {"lr": 0.01}),
                status, source if depth else "root", val, None, None if val is None else -val, 0, 0.0,
                seg if depth else 0, None, f"checkpoints/node_{id:05d}.pt", "sha", None, None, 0.0,
                finished if depth else 0.0)


# ASHA ---------------------------------------------------------------------------------------------------------
def test_asha_rungs_and_cutoff_follow_ray_tune():
    assert asha.rungs(3, grace=1, rf=4) == (1,)
    assert asha.rungs(16, grace=1, rf=4) == (1, 4)
    assert asha.rungs(9, grace=2, rf=2) == (2, 4, 8)
    assert asha.cutoff([], rf=4) is None
    assert asha.cutoff([1.0, 2.0, 3.0, 4.0, 5.0], rf=4) == pytest.approx(4.0)  # the 75th percentile


def _asha(base_first=False):
    surface = ActionSurface((Knob("lr", 1e-4, 1e-1, Scale.LOG, 1.0, Role.OPTIMIZER, "learning rate"),))
    return asha.ASHAPolicy(surface, 3, 30, 0, OBJ, rf=4, grace=1,
                           base={"lr": 0.01} if base_first else None)


def test_asha_promotes_the_better_chain_at_a_rung_and_stops_the_worse():
    # three chains reached rung 1 (depth 1) in the order 2, 3, 4; lower loss is better
    nodes = [node(1, None, 0), node(2, 1, 1, 0.50, {"lr": 0.01}, finished=1.0),
             node(3, 1, 1, 0.60, {"lr": 0.02}, finished=2.0), node(4, 1, 1, 0.40, {"lr": 0.03}, finished=3.0)]
    assert asha.promotions(nodes, objective=OBJ, rung_depths=(1,), rf=4) == {2: True, 3: False, 4: True}
    policy = _asha()
    step = policy.plan(nodes, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(0))
    assert step == Grow(2, {"lr": 0.01}, "asha", "asha: continue the chain")  # the first to arrive continues
    nodes.append(node(5, 2, 2, 0.45, {"lr": 0.01}, finished=4.0))
    step = policy.plan(nodes, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(0))
    assert step == Grow(4, {"lr": 0.03}, "asha", "asha: continue the chain")  # the better one, never node 3
    assert not policy.may_expand(nodes[2], nodes, frozenset()) and policy.may_expand(nodes[3], nodes, frozenset())
    nodes.append(node(6, 4, 2, 0.35, {"lr": 0.03}, status=NodeStatus.RUNNING))
    step = policy.plan(nodes, in_flight=frozenset({6}), closed=frozenset(), budget=Budget.left_of(10))
    assert step == Grow(5, {"lr": 0.01}, "asha", "asha: continue the chain")  # depth 2 is no rung
    nodes.append(node(7, 5, 3, status=NodeStatus.RUNNING))
    # with no budget for a new trial, wait for the chains in flight
    assert isinstance(policy.plan(nodes, in_flight=frozenset({6, 7}), closed=frozenset(), budget=Budget.left_of(10)), Wait)


def test_asha_fills_a_free_worker_with_a_new_trial_while_a_chain_trains():
    nodes = [node(1, None, 0), node(2, 1, 1, 0.50, finished=1.0), node(3, 2, 2, status=NodeStatus.RUNNING)]
    step = _asha().plan(nodes, in_flight=frozenset({3}), closed=frozenset(), budget=Budget.left_of(50))
    assert isinstance(step, Grow) and step.parent == 1 and step.note == "asha trial 2"


def test_every_policy_name_is_configurable_and_every_baseline_is_a_compare_method():
    from typing import get_args

    from searchmgr.compare import BASELINES
    from searchmgr.config import PolicyConfig
    from searchmgr.policies import POLICIES

    assert set(get_args(PolicyConfig.model_fields["name"].annotation)) == set(POLICIES) == {"uct", *BASELINES}


def test_asha_starts_new_trials_only_when_one_can_finish_and_its_first_is_the_base_recipe():
    policy = _asha(base_first=True)
    root = [node(1, None, 0)]
    step = policy.plan(root, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(30))
    assert isinstance(step, Grow) and step.recipe == {"lr": 0.01} and step.parent == 1
    assert not isinstance(policy.plan(root, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(29)), Grow)


# hyperband --------------------------------------------------------------------------------------------------------
def test_hyperband_stops_worse_chains_at_a_segment_end_and_keeps_the_best():
    config, task = resolve(build_config({"task": "toy", "task_options": {"preset": "smoke"},
                                         "policy": {"name": "hyperband", "base_first": False}}))
    policy = make_policy(config, task)
    nodes = [node(1, None, 0, recipe=task.base_recipe(), source="root")]
    for i, loss in enumerate((0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90)):
        step = policy.plan(nodes, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(10 ** 6))
        assert isinstance(step, Grow) and step.parent == 1, step  # every earlier chain stopped or is set aside
        first = node(i + 2, 1, 1, loss, step.recipe, finished=float(i), source="hyperband", seg=20)
        nodes.append(first)
        policy.added(first, step.tag)
        policy.told(first)  # done at step 20: the pruner is told the segment's last evaluation
        if policy.continues(first, nodes):
            nodes.append(node(100 + i, first.id, 2, status=NodeStatus.RUNNING, recipe=step.recipe, seg=20))
    going = [n.id for n in nodes if n.depth == 1 and policy.continues(n, nodes)]
    assert going[0] == 2 and len(going) < 7, going  # the best first chain goes on; some worse ones stop at the rung
    assert not any(n.status is NodeStatus.RUNNING and n.parent_id not in going for n in nodes)


# PB2 ----------------------------------------------------------------------------------------------------------
def _population(gain_of):
    """Generation 1 of four members at lr positions 0.1..0.7 whose second-half gain is ``gain_of(position)``."""
    surface = ActionSurface((Knob("lr", 1e-4, 1e-1, Scale.LOG, 1.0, Role.OPTIMIZER, "learning rate"),
                             Knob("dropout", 0.0, 0.5, Scale.LINEAR, 0.2, Role.REGULARIZATION, "dropout")))
    lr = surface["lr"]
    nodes, evals = [node(1, None, 0)], {}
    for i, pos in enumerate((0.1, 0.3, 0.5, 0.7)):
        first, last = 1.0, 1.0 - gain_of(pos)
        nodes.append(node(i + 2, 1, 1, last, {"lr": lr.at(pos), "dropout": 0.25}, finished=i, source="pb2"))
        evals[i + 2] = [(5, {"val/loss": first}), (10, {"val/loss": last})]
    policy = pb2.PB2Policy(surface, 3, 4, 0.25, 0, OBJ, segment_steps=10)
    policy.resume(nodes, lambda nid: evals.get(nid, []))
    return policy, nodes, lr


@pytest.mark.parametrize("gain_of, better", [(lambda p: 0.1 * p, "higher"), (lambda p: 0.1 * (1 - p), "lower")])
def test_pb2_explores_in_the_direction_of_observed_improvement(gain_of, better):
    policy, nodes, lr = _population(gain_of)
    donor = nodes[2]  # the middle of the population, lr position 0.3
    recipe, note = policy.explore(nodes, donor, random.Random(0))
    pos = lr.normalise(recipe["lr"])
    assert "GP-UCB over 4 observed segments" in note
    assert (pos > 0.6) if better == "higher" else (pos < 0.2), pos


def test_pb2_plans_the_bottom_member_from_a_top_donor_with_the_gp():
    policy, nodes, lr = _population(lambda p: 0.1 * p)
    step = policy.plan(nodes, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(100))
    # member 0 (lr position 0.1) is the bottom quantile: it copies the best member (node 5) and explores
    assert isinstance(step, Grow) and step.parent == 5 and "GP-UCB" in step.note
    assert lr.normalise(step.recipe["lr"]) > 0.6


def test_pb2_gp_lowers_the_variance_near_recipes_already_chosen():
    obs = [pb2.Observation(0.0, 0.0, (p,), 0.1 * p) for p in (0.1, 0.3, 0.5, 0.7)]
    gp = pb2.fit(np.array([[o.t, 0.0, *o.x] for o in obs]), np.array([o.gain for o in obs]))
    point = np.array([[1.0, 0.0, 0.95]])
    assert gp.with_points(point).std(point)[0] < gp.std(point)[0]
    a = pb2.select(obs, t=1.0, before=0.0, pending=[], rng=np.random.default_rng(0))
    b = pb2.select(obs, t=1.0, before=0.0, pending=[list(a.points[0])], rng=np.random.default_rng(0))
    assert abs(b.points[0][0] - a.points[0][0]) > 1e-3  # the second choice of a generation moves away


# smoke runs ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "c"
    return compare(SMOKE + ["seeds=1", f"methods={','.join(METHODS)}", f"out={out}"], say=lambda *_: None)


def _tree(run):
    with TreeStore(f"{run}/tree.db") as store:
        return [(n.id, n.parent_id, n.recipe, n.status, n.source, n.val_score)
                for n in store.nodes(store.search()["id"])]


def test_each_method_completes_a_schedule_within_budget(runs):
    assert list(runs["methods"]) == list(METHODS)
    for key, entry in runs["methods"].items():
        (row,) = entry["seeds"]
        assert row["complete"] and row["steps_used"] <= runs["budget_steps"], key
        sources = {t[4] for t in _tree(row["run"])} - {"root"}
        assert sources == {key}, (key, sources)


def test_asha_runs_the_base_recipe_first_then_stops_chains_at_its_rung(runs):
    tree = _tree(runs["methods"]["asha"]["seeds"][0]["run"])
    firsts = [t for t in tree if t[1] == 1]
    assert firsts[0][2] == _base()  # policy.base_first defaults to true
    assert len(firsts) > runs["budget_steps"] // runs["horizon"]  # more trials than whole chains could pay for
    assert any(not any(c[1] == t[0] for c in tree) for t in firsts)  # some chain stopped at rung 1


def _base():
    _, task = resolve(build_config({"task": "toy", "task_options": {"preset": "smoke"}}))
    return task.base_recipe()


@pytest.mark.parametrize("method", METHODS)
def test_a_stopped_run_resumes_to_the_uninterrupted_tree(runs, method, tmp_path):
    run = tmp_path / method
    explore(SMOKE + [f"policy.name={method}", "budget.nodes=4", f"out={run}"])
    explore({"budget": {"nodes": None}}, resume=run)
    expected = _tree(runs["methods"][method]["seeds"][0]["run"])
    got = _tree(run)
    assert [t[:5] for t in got] == [t[:5] for t in expected]
    assert [t[5] for t in got] == pytest.approx([t[5] for t in expected])


@pytest.mark.parametrize("words, message", [
    (["policy.name=asha", "policy.reduction_factor=1"], "reduction_factor"),
    (["policy.name=hyperband", "policy.reduction_factor=1"], "reduction_factor"),
    (["policy.name=asha", "policy.grace=4"], "grace"),
    (["policy.name=asha", "policy.grace=0"], "grace"),
    (["policy.name=pb2", "budget.steps=100"], "pb2 needs a population of 2"),
])
def test_bad_settings_fail_before_training(words, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        explore(SMOKE + words + [f"out={tmp_path / 'r'}"])
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match=message):  # compare checks every method before its first run
        compare(SMOKE + [f"methods=tree,{words[0].partition('=')[2]}", *words[1:], f"out={tmp_path / 'c'}"],
                say=lambda *_: None)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("method", ("grid", "random", "tpe", "hyperband", "asha"))
@pytest.mark.parametrize("base_first", (True, False))
def test_constant_baselines_enqueue_the_base_recipe_first_when_asked(method, base_first):
    config, task = resolve(build_config({"task": "toy", "task_options": {"preset": "smoke"},
                                         "policy": {"name": method, "base_first": base_first}}))
    policy = make_policy(config, task)
    root = [node(1, None, 0, recipe=task.base_recipe())]
    step = policy.plan(root, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(config.budget.steps))
    assert isinstance(step, Grow) and step.parent == 1
    assert (step.recipe == task.base_recipe()) is base_first
