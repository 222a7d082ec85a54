from searchmgr import tree as T
from searchmgr.store import Node, NodeStatus
from searchmgr.tasks.base import Direction, Objective

OBJ = Objective("val/safe_success", Direction.MAXIMIZE, "test/safe_success")


def leaf(nid: int, val: float, utility: float | None, depth: int = 2) -> Node:
    return Node(id=nid, search_id=1, parent_id=1, depth=depth, start_step=0, end_step=10, recipe={},
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
