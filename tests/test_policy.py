"""plan(): the order of answers (retry, fixed path, UCT, wait, exhausted) and in-flight nodes."""

from dataclasses import replace

from searchmgr.budget import Budget
from searchmgr import policies, retention
from searchmgr.objective import Direction, Objective
from searchmgr.store import Node, NodeStatus

R = {"lr": 1.0}
OBJ = Objective("val/loss", Direction.MINIMIZE, "test/loss")


def node(id, parent, depth, status=NodeStatus.DONE, source="fixed", val=None, visits=0, value_sum=0.0,
         ckpt=True, recipe=R):
    return Node(id, 1, parent, depth, depth * 10 - 10 if depth else 0, depth * 10, dict(recipe), status, source,
                val, None, None if val is None else -val, visits, value_sum, 10 if depth else 0, None,
                f"checkpoints/node_{id:05d}.pt" if ckpt else None, "sha" if ckpt else None, None, None, 0.0, None)


def tree():
    # root 1, fixed path 2-3 (max_depth 2), one searched child 4 of 2
    return [node(1, None, 0, source="root", visits=3, value_sum=-3.0), node(2, 1, 1, val=1.0, visits=3, value_sum=-3.0),
            node(3, 2, 2, val=1.0, visits=1, value_sum=-1.0, ckpt=False),
            node(4, 2, 2, source="heuristic", val=0.9, visits=1, value_sum=-0.9, recipe={"lr": 0.5}, ckpt=False)]


def test_unfinished_nodes_come_first_unless_in_flight():
    nodes = tree() + [node(5, 1, 1, NodeStatus.INTERRUPTED, "heuristic", recipe={"lr": 2.0})]
    assert policies.plan(nodes, c=0.5, k_max=3, max_depth=2) == policies.Retry(5)
    assert not isinstance(policies.plan(nodes, c=0.5, k_max=3, max_depth=2, in_flight={5}), policies.Retry)


def test_the_fixed_path_grows_first():
    nodes = tree()[:2]
    assert policies.plan(nodes, c=0.5, k_max=3, max_depth=2) == policies.Grow(2, R, "fixed",
                                                                              "fixed baseline: hold the base recipe")
    # while the fixed tip trains, other workers expand with UCT instead of idling
    nodes = nodes + [node(3, 2, 2, NodeStatus.RUNNING, ckpt=False)]
    assert isinstance(policies.plan(nodes, c=0.5, k_max=3, max_depth=2, in_flight={3}), policies.Expand)


def test_wait_while_in_flight_nodes_may_open_room_then_exhausted():
    nodes = tree()
    full = policies.plan(nodes, c=0.5, k_max=2, max_depth=2, closed={1})  # root closed, node 2 has k_max children
    assert full == policies.Exhausted("tree exhausted (every node has k_max children or reached max_depth)")
    nodes = nodes + [node(5, 1, 1, NodeStatus.RUNNING, "heuristic", recipe={"lr": 2.0}, ckpt=False)]
    assert isinstance(policies.plan(nodes, c=0.5, k_max=2, max_depth=2, in_flight={5}, closed={1}), policies.Wait)


def test_view_counts_in_flight_nodes_as_pending_visits_of_their_ancestors():
    nodes = tree() + [node(5, 2, 2, NodeStatus.RUNNING, "heuristic", recipe={"lr": 2.0}, ckpt=False)]
    v = policies.view(nodes, in_flight={5})
    assert [v.nodes[i].pending for i in (1, 2, 3, 4, 5)] == [1, 1, 0, 0, 1]
    assert not v.nodes[5].expandable and v.nodes[2].expandable
    assert not policies.view(nodes, closed={2}).nodes[2].expandable


def doomed(nodes, keep="expandable", closed=frozenset(), in_flight=frozenset()):
    uct = policies.UCTPolicy(c=0.5, k_max=3, max_depth=2)
    return [n.id for n in retention.doomed(nodes, keep=keep, objective=OBJ, max_depth=2, in_flight=in_flight,
                                           may_expand=lambda n: uct.may_expand(n, nodes, closed))]


def test_retention_keeps_what_can_still_be_a_parent_and_the_tips():
    nodes = tree()
    nodes[2] = replace(nodes[2], checkpoint="checkpoints/node_00003.pt")  # fixed tip (a leaf) has a checkpoint
    nodes[3] = replace(nodes[3], checkpoint="checkpoints/node_00004.pt")  # best leaf
    extra = node(6, 2, 2, source="heuristic", val=1.5, recipe={"lr": 0.7})  # a worse leaf with a checkpoint
    nodes.append(extra)
    assert doomed(nodes, keep="all") == []
    assert doomed(nodes) == [6]
    # a closed parent goes too, unless something in flight still trains from it
    assert doomed(nodes, closed={2}) == [2, 6]
    running = node(7, 2, 2, NodeStatus.RUNNING, "heuristic", recipe={"lr": 0.3}, ckpt=False)
    assert doomed(nodes + [running], closed={2}, in_flight={7}) == [6]


def test_start_anywhere_spreads_root_children_over_the_surface(tmp_path):
    from searchmgr.search import explore
    from searchmgr.store import TreeStore

    out = tmp_path / "run"
    explore(["task=toy", "preset=smoke", "threads=1", "uct.start=anywhere", "uct.c=2", "budget.steps=240",
             f"out={out}"])
    with TreeStore(out / "tree.db") as s:
        nodes = s.nodes(1)
    starts = [n for n in nodes if n.source == policies.START]
    assert len(starts) >= 2 and all(n.depth == 1 for n in starts)
    # far beyond one bounded step from the base recipe (dropout may move 0.1 per step): the whole range is open
    assert max(n.recipe["dropout"] for n in starts) > 0.2
    assert all(n.source != policies.START for n in nodes if n.depth > 1)


def test_widening_spends_the_budget_where_a_fixed_k_max_exhausts_the_tree(tmp_path):
    from searchmgr.search import explore

    # uct.start=bounded kept: the start design gives the root one child per horizon the budget holds, whatever
    # k_max, so a k_max=1 tree then grows with the budget (widen=0 spent 360 of 400 steps, and all of 600);
    # the other shipped defaults apply
    words = ["task=toy", "preset=smoke", "threads=1", "uct.k_max=1", "budget.steps=400", "stopper.name=none",
             "uct.start=bounded"]
    narrow = explore(words + ["uct.widen=0", f"out={tmp_path / 'a'}"])
    wide = explore(words + ["uct.widen=1", f"out={tmp_path / 'b'}"])
    assert "exhausted" in narrow.stop_reason and narrow.steps_used <= 200
    assert wide.steps_used > 400 - 60 and "step budget" in wide.stop_reason


def test_max_q_follows_one_success_that_the_mean_dilutes():
    from searchmgr.uct import NodeView, TreeView, select

    # child 2: one great leaf (utility 1.0) among three poor ones; child 3: steady 0.5 -> mean prefers 3, max 2
    nodes = [NodeView(1, None, 0, True, None, 8, 0.0), NodeView(2, 1, 1, True, 0.0, 4, 1.0),
             NodeView(3, 1, 1, True, 0.5, 4, 2.0)] + \
            [NodeView(10 + i, 2, 2, True, u, 1, u) for i, u in enumerate((1.0, 0.0, 0.0))]
    tree = TreeView.build(nodes)
    assert select(tree, c=0.1, k_max=2, max_depth=3).path[:2] == (1, 3)
    assert select(tree, c=0.1, k_max=2, max_depth=3, q_rule="max").path[:2] == (1, 2)


def chain_tree():
    # max_depth 3, segments of 10 steps; fixed path 2-3-4 complete (val 1.0 at every depth);
    # start 5 leads it at depth 1 (0.8), start 6 trails it (1.2); node 7 holds 5 and leads at depth 2
    return [node(1, None, 0, source="root"), node(2, 1, 1, val=1.0), node(3, 2, 2, val=1.0), node(4, 3, 3, val=1.0),
            node(5, 1, 1, source="start", val=0.8, recipe={"lr": 0.3}),
            node(6, 1, 1, source="start", val=1.2, recipe={"lr": 3.0})]


def test_finish_holds_a_leader_to_the_horizon_when_the_budget_left_just_pays_for_it():
    nodes = chain_tree()
    kw = dict(max_depth=3, segment_steps=10)
    end = policies.finish(nodes, budget_left=25, **kw)  # node 5 needs 20 steps; 25 - 20 < one segment
    assert end is not None and (end.parent, end.recipe, end.source) == (5, {"lr": 0.3}, policies.FINISH)
    assert policies.finish(nodes, budget_left=30, **kw) is None  # a segment more is left: keep searching
    assert policies.finish(nodes, budget_left=15, **kw) is None  # too late to finish it
    assert policies.finish(nodes, budget_left=25, in_flight={5}, **kw) is None
    assert policies.finish(nodes, budget_left=25, closed={5}, **kw) is None
    # once its hold child is there, that child is the one to continue (it leads at depth 2)
    nodes += [node(7, 5, 2, source="finish", val=0.7, recipe={"lr": 0.3})]
    assert policies.finish(nodes, budget_left=15, **kw).parent == 7
    # a trailing chain is never finished
    assert policies.finish(chain_tree()[:4] + [chain_tree()[5]], budget_left=25, **kw) is None
    # before any schedule is complete, the best node the steps left can still carry to the horizon is finished
    incomplete = chain_tree()[:3] + chain_tree()[4:]
    end = policies.finish(incomplete, budget_left=25, **kw)
    assert end is not None and end.parent == 5 and "no schedule is complete" in end.note
    assert policies.finish(incomplete, budget_left=35, **kw) is None  # a segment more is left: keep searching


def test_finish_segments_are_not_pruned_and_the_uct_policy_plans_them():
    uct = policies.UCTPolicy(c=0.5, k_max=3, max_depth=3, segment_steps=10, finish=True)
    nodes = chain_tree()
    step = uct.plan(nodes, in_flight=frozenset(), closed=frozenset(), budget=Budget.left_of(25))
    assert isinstance(step, policies.Grow) and step.parent == 5
    assert uct.stopper(node(7, 5, 2, source="finish"), lambda: "rule") is None
    assert uct.stopper(node(7, 5, 2, source="heuristic"), lambda: "rule") == "rule"


def test_median_at_depth_counts_pruned_segments_where_they_stopped():
    from searchmgr import tree as T

    nodes = chain_tree() + [node(8, 1, 1, NodeStatus.PRUNED, "start", val=2.0, recipe={"lr": 9.0})]
    assert T.best_at_depth(nodes, OBJ, 1) == 0.8
    assert T.median_at_depth(nodes, OBJ, 1) == (1.0 + 1.2) / 2  # of 0.8, 1.0, 1.2 and the pruned 2.0


def test_each_uct_rule_changes_only_the_plan_it_names():
    from searchmgr.policies import uct as U

    nodes = tree()  # root 1, fixed 2 -> 3, searched child 4 of 2 (lr 0.5); node 2 already has a same-recipe child
    snap = U.Snapshot(nodes, budget=Budget.left_of(100))
    sel = U.Select(c=0.5, k_max=3, max_depth=2)(snap)
    assert isinstance(sel, policies.Expand)
    at = lambda parent: policies.Expand(parent, sel.selection)  # noqa: E731
    wait = policies.Wait("busy")
    # hold-first: an Expand of a non-root parent without a same-recipe child becomes a hold child
    lone = [nodes[0], node(2, 1, 1, source="start", val=1.0),
            node(4, 2, 2, source="heuristic", val=0.9, recipe={"lr": 0.5})]
    assert U.HoldFirst()(at(2), U.Snapshot(lone)) == policies.Grow(2, R, U.HOLD, "hold first: continue the "
                                                                   "parent's recipe unchanged")
    assert U.HoldFirst()(at(2), snap) == at(2)  # node 3 already holds node 2's recipe
    assert U.HoldFirst()(at(1), snap) == at(1) and U.HoldFirst()(wait, snap) is wait
    # first starts: every Expand goes to the root until that many start points exist
    assert U.FirstStarts(1)(at(2), snap) == at(1)
    assert U.FirstStarts(0)(at(2), snap) == at(2) and U.FirstStarts(1)(wait, snap) is wait
    # widening: Exhausted is planned again without k_max while the budget pays for a segment
    tight = U.Select(c=0.5, k_max=1, max_depth=2)  # the root and node 2 already have k_max children
    done = tight(U.Snapshot(nodes))
    assert isinstance(done, policies.Exhausted)
    assert isinstance(U.Widen(tight, 10)(done, U.Snapshot(nodes, budget=Budget.left_of(10))), policies.Expand)
    assert U.Widen(tight, 10)(done, U.Snapshot(nodes, budget=Budget.left_of(9))) is done
    # the finish rule leaves a plan alone when no schedule is complete
    assert U.Finish(max_depth=3, segment_steps=10)(at(2), snap) == at(2)


def test_the_config_switches_rules_on_in_their_order():
    from searchmgr.policies import uct as U

    names = lambda **kw: [type(r).__name__ for r in U.UCTPolicy(c=0.5, k_max=3, max_depth=2, **kw).rules]  # noqa
    assert names() == []
    assert names(start="anywhere", hold_first=True, widen=1.0, finish=True) == [
        "FirstStarts", "Widen", "Finish", "HoldFirst", "StartDesign"]
    assert names(hold_first=True) == ["HoldFirst"]
