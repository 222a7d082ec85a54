import math

from searchmgr.tasks.base import Direction, Objective, TieBreak

SUCCESS = Objective("val/safe_success", Direction.MAXIMIZE, "test/safe_success",
                    TieBreak("val/final_dist", Direction.MINIMIZE, 1e-3))


def test_without_tiebreak_the_search_utility_is_the_objective_utility():
    loss = Objective("val/loss", Direction.MINIMIZE, "test/loss")
    assert loss.search_utility({"val/loss": 2.5, "val/other": 1.0}) == -2.5


def test_tiebreak_orders_exact_ties_by_the_secondary_metric():
    near = SUCCESS.search_utility({"val/safe_success": 0.0, "val/final_dist": 0.6})
    far = SUCCESS.search_utility({"val/safe_success": 0.0, "val/final_dist": 1.2})
    assert near > far > 0.0
    assert near - 0.0 < 1e-3  # the whole tie-break term stays below its weight


def test_tiebreak_never_reorders_different_objective_values():
    # the smallest step of a rate over 1000 episodes against the best and the worst possible tie-break
    worse = SUCCESS.search_utility({"val/safe_success": 0.500, "val/final_dist": 0.0})
    better = SUCCESS.search_utility({"val/safe_success": 0.501, "val/final_dist": 1e9})
    assert better > worse


def test_missing_or_non_finite_values():
    assert SUCCESS.search_utility({"val/safe_success": 0.25}) == 0.25  # no tie-break metric: no term
    assert SUCCESS.search_utility({"val/safe_success": 0.25, "val/final_dist": math.nan}) == 0.25
    assert SUCCESS.search_utility({"val/final_dist": 0.5}) == -math.inf  # no objective: worst
