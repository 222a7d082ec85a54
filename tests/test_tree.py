from searchmgr import tree as T
from searchmgr.store import Node, NodeStatus
from searchmgr.tasks.base import Direction, Objective

OBJ = Objective("val/safe_success", Direction.MAXIMIZE, "test/safe_success")


def leaf(nid: int, val: float, utility: float | None, depth: int = 2, end_step: int | None = None) -> Node:
    end_step = 10 * depth if end_step is None else end_step  # segments of 10 steps
    return Node(id=nid, search_id=1, parent_id=1, depth=depth, start_step=end_step - 10, end_step=end_step, recipe={},
                status=NodeStatus.DONE, source="heuristic", val_score=val, test_score=val, utility=utility,
                visits=1, value_sum=utility or 0.0, steps_trained=10, train_s=0.1, checkpoint=None,
                checkpoint_sha256=None, decision_id=None, error=None, created_at=0.0, finished_at=0.0)


def test_best_leaf_breaks_objective_ties_by_the_search_utility():
    nodes = [leaf(2, 0.0, 0.0002), leaf(3, 0.0, 0.0007), leaf(4, 0.0, 0.0004)]
    assert T.best_leaf(nodes, OBJ, max_depth=2).id == 3


def test_best_leaf_ranks_the_objective_before_the_search_utility():
    nodes = [leaf(2, 0.5, 0.5009), leaf(3, 0.53, 0.5300), leaf(4, 0.53, None)]
    assert T.best_leaf(nodes, OBJ, max_depth=2).id == 3
    # equal on both: the earlier node
    assert T.best_leaf([leaf(5, 0.1, 0.1), leaf(6, 0.1, 0.1)], OBJ, max_depth=2).id == 5


def test_best_leaf_prefers_complete_schedules():
    nodes = [leaf(2, 0.9, 0.9, depth=1), leaf(3, 0.1, 0.1, depth=2)]
    assert T.best_leaf(nodes, OBJ, max_depth=2).id == 3


def test_a_supervised_chain_ending_at_the_horizon_is_complete_whatever_its_depth():
    """A supervised run splits where decisions apply: its last segment ends at the horizon (20) at any depth."""
    nodes = [leaf(2, 0.5, 0.5, depth=2), leaf(3, 0.7, 0.7, depth=3, end_step=20),
             leaf(4, 0.9, 0.9, depth=1, end_step=15)]  # a segment of the chain before a decision split it
    assert [n.id for n in T.ranked_leaves(nodes, OBJ, max_depth=2)] == [3, 2]


def test_the_fixed_path_goes_on_through_the_endgames_hold_of_a_fixed_node():
    """uct.finish may hold a fixed node's recipe to the horizon; that hold is the fixed recipe carried on (its
    source says which rule grew it), so the fixed path reaches the horizon through it. A changed child or a
    hold of the root by another rule is not the fixed path."""
    from dataclasses import replace

    base = {"lr": 0.001}
    root = replace(leaf(1, 0.0, None, depth=0), parent_id=None, source=T.ROOT, recipe=base)
    start = replace(leaf(2, 0.4, 0.4, depth=1), source="start", recipe=base)  # same recipe, not fixed
    fixed = replace(leaf(3, 0.5, 0.5, depth=1), source=T.FIXED, recipe=base)
    moved = replace(leaf(4, 0.6, 0.6, depth=2), parent_id=3, source="model", recipe={"lr": 0.002})
    held = replace(leaf(5, 0.7, 0.7, depth=2), parent_id=3, source="finish", recipe=base)
    tip = replace(leaf(6, 0.8, 0.8, depth=3), parent_id=5, source="finish", recipe=base)
    nodes = [root, start, fixed, moved, held, tip]
    assert [n.id for n in T.fixed_path(nodes)] == [1, 3, 5, 6]
    assert [n.id for n in T.fixed_path(nodes[:4])] == [1, 3]
