"""One budget (spent, committed, left) for the coordinator and the policies; chains start only when they can finish."""

from searchmgr import tree as T
from searchmgr.budget import Budget
from searchmgr.compare import compare
from searchmgr.config import build_config
from searchmgr.policies.chains import Chains
from searchmgr.search import create_run
from searchmgr.store import NodeStatus, TreeStore


def test_budget_counts_in_flight_and_unfinished_nodes_at_full_length(tmp_path):
    coordinator = create_run(build_config({"task": "toy", "task_options": {"preset": "smoke"},
                                           "out": str(tmp_path / "r"), "budget": {"steps": 120}}))
    try:
        coordinator.run()
        nodes = coordinator.nodes()
    finally:
        coordinator.close()
    done = Budget.of(nodes, 120)
    assert done.spent == T.steps_used(nodes) and done.committed == 0 and done.left == 120 - done.spent
    leaf = next(n for n in nodes if n.depth == 1)
    held = Budget.of(nodes, 120, in_flight={leaf.id})  # as if it were training again: its full length
    assert held.committed == leaf.end_step - leaf.start_step and held.spent == done.spent - leaf.steps_trained
    assert Budget(120, 40, 20).can_finish(60) and not Budget(120, 40, 20).can_finish(60, owed=20)


def three_workers(tmp_path, name, budget, owed=True, monkeypatch=None):
    """A chain baseline with three segments in flight at once (the inline executor, told it has three workers)."""
    if not owed:
        monkeypatch.setattr(Chains, "owed", lambda self, nodes, in_flight: 0)  # the old rule: the left steps only
    coordinator = create_run(build_config({"task": "toy", "task_options": {"preset": "smoke"}, "threads": 1,
                                           "out": str(tmp_path / name), "policy": {"name": "random"},
                                           "budget": {"steps": budget}}))
    coordinator.executor.capacity = 3
    try:
        coordinator.run()
        return coordinator.nodes(), coordinator.config
    finally:
        coordinator.close()


def test_three_workers_on_a_two_horizon_budget_complete_their_chains(tmp_path, monkeypatch):
    nodes, config = three_workers(tmp_path, "fixed", 120)  # toy smoke: a horizon of 3 x 20 steps
    chains = [n for n in nodes if n.depth == 1]
    complete = [n for n in nodes if n.depth == config.max_depth and n.status is NodeStatus.DONE]
    assert len(complete) >= 1 and len(complete) == len(chains)  # every chain started was finished
    assert T.steps_used(nodes) <= 120  # no overcommit
    # the old rule started a third chain whose segments the budget could not pay: none complete
    old, _ = three_workers(tmp_path, "old", 120, owed=False, monkeypatch=monkeypatch)
    assert len([n for n in old if n.depth == 1]) == 3
    assert not [n for n in old if n.depth == config.max_depth]


def test_compare_counts_complete_schedules_only_and_says_when_none(tmp_path):
    said = []
    result = compare(["task=toy", "preset=smoke", "methods=random", "seeds=1", "budget.steps=60", "budget.nodes=2",
                      f"out={tmp_path / 'cmp'}"], say=said.append)  # two segments of a three-segment horizon
    row = result["methods"]["random"]["seeds"][0]
    assert not row["complete"] and row["best_val"] is None and row["test"] is None
    assert result["methods"]["random"]["best_val"] is None
    assert any("random completed no schedule" in line for line in said)
