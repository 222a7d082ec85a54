"""Golden trees for UCT with virtual-child expansion (numbers worked out by hand in the comments)."""

import math

import pytest

from searchmgr.uct import Normaliser, NodeView, TreeView, backup, has_room, select, uct_score, virtual_score


def node(id, parent, depth, utility, visits, value_sum, expandable=True):
    return NodeView(id, parent, depth, expandable, utility, visits, value_sum)


def test_formulas():
    # UCT(c) = Q + C sqrt(ln N(p) / N(c)); N_fair = N(p) / (k + 1)
    assert uct_score(0.5, 4, 2, c=1.0) == pytest.approx(0.5 + math.sqrt(math.log(4) / 2))
    assert virtual_score(0.2, 6, 2, c=1.0) == pytest.approx(0.2 + math.sqrt(math.log(6) / 2))
    assert uct_score(0.0, 4, 0, c=1.0) == math.inf


def three_children():
    # root N=4; child 2: u=-1 N=1; child 3: u=-0.5 N=2 (mean -0.5); child 4 pruned: u=-2 N=1
    # normaliser: low=-2, high=-0.5 -> Q(2)=0.667, Q(3)=1.0, Q(4)=0
    return TreeView.build([
        node(1, None, 0, None, 4, -4.5),
        node(2, 1, 1, -1.0, 1, -1.0),
        node(3, 1, 1, -0.5, 2, -1.0),
        node(4, 1, 1, -2.0, 1, -2.0, expandable=False),
        node(5, 3, 2, -0.5, 1, -0.5),
    ])


def test_small_c_descends_into_the_best_mean():
    # c=0.5: UCT(2)=0.667+0.5*sqrt(ln4/1)=1.255, UCT(3)=1.0+0.5*sqrt(ln4/2)=1.416, virtual=0+0.5*1.177=0.589
    # at 3 (N=2, one child 5 with Q=1): UCT(5)=1+0.5*sqrt(ln2)=1.416; virtual=Q_prior 1 + 0.5*sqrt(ln2/1)=1.416
    # -> tie is not a win for the virtual child: descend into 5, which has no children: expand 5
    sel = select(three_children(), c=0.5, k_max=4, max_depth=3)
    assert sel.path == (1, 3, 5) and sel.parent == 5


def test_large_c_prefers_the_less_visited_child():
    # c=5: UCT(2)=0.667+5*1.177=6.554 > UCT(3)=1+5*0.833=5.163; virtual=5*1.177=5.887 < 6.554
    sel = select(three_children(), c=5.0, k_max=4, max_depth=3)
    assert sel.path == (1, 2) and sel.parent == 2


def single_child_tree():
    # one observed score: every normalised value is 0.5, the unscored root's prior is 0
    return TreeView.build([node(1, None, 0, None, 6, -6.0), node(2, 1, 1, -1.0, 6, -6.0)])


def test_virtual_child_wins_with_large_c():
    # c=3: UCT(2)=0.5+3*sqrt(ln6/6)=2.138; virtual: N_fair=6/2=3 -> 0+3*sqrt(ln6/3)=2.316 -> expand the root
    sel = select(single_child_tree(), c=3.0, k_max=3, max_depth=3)
    assert sel.parent == 1 and sel.path == (1,)
    assert sel.scores["virtual"] == pytest.approx(3 * math.sqrt(math.log(6) / 3))
    assert sel.scores["best_child"] == pytest.approx(0.5 + 3 * math.sqrt(math.log(6) / 6))


def test_existing_child_wins_with_small_c():
    # c=0.5: UCT(2)=0.5+0.5*0.546=0.773 > virtual 0.5*0.772=0.386 -> descend, expand 2
    sel = select(single_child_tree(), c=0.5, k_max=3, max_depth=3)
    assert sel.path == (1, 2)


def test_k_max_blocks_expansion():
    # with k_max=1 the root cannot expand even when the virtual child would win
    sel = select(single_child_tree(), c=3.0, k_max=1, max_depth=3)
    assert sel.path == (1, 2)


def test_exhausted_tree_returns_none():
    tree = TreeView.build([node(1, None, 0, None, 1, -1.0), node(2, 1, 1, -1.0, 1, -1.0)])
    assert select(tree, c=1.0, k_max=1, max_depth=1) is None  # child at the horizon, root full
    assert not has_room(tree, 1, k_max=1, max_depth=1)
    assert has_room(tree, 1, k_max=2, max_depth=1)


def test_pruned_children_are_never_descended_into():
    tree = TreeView.build([node(1, None, 0, None, 2, -1.0),
                           node(2, 1, 1, -0.1, 1, -0.1, expandable=False),
                           node(3, 1, 1, -0.9, 1, -0.9)])
    sel = select(tree, c=0.1, k_max=2, max_depth=3)
    assert sel.path == (1, 3)


def test_backup_updates_every_ancestor():
    tree = three_children()
    out = backup(tree, 5, -0.25)
    assert out == {5: (2, -0.75), 3: (3, -1.25), 1: (5, -4.75)}


def test_normaliser():
    norm = Normaliser(-2.0, -0.5)
    assert norm(-2.0) == 0.0 and norm(-0.5) == 1.0 and norm(-1.25) == pytest.approx(0.5)
    assert norm(None) == 0.0 and norm(-math.inf) == 0.0 and norm(5.0) == 1.0
    assert Normaliser(1.0, 1.0)(1.0) == 0.5


def test_pending_visits_steer_exploration_but_not_q():
    # WU-UCT: with c=5 child 2 wins (above). One node training under 2 (O=1) makes N(2)=2 in the exploration
    # term: UCT(2)=0.667+5*sqrt(ln5/2)=4.908 (root N=4+1), UCT(3)=1+5*sqrt(ln5/2)=5.241, virtual=5*sqrt(ln5/1.25)
    # =5.673 (N_fair=5/4) -> the virtual child wins now: expand the root instead of piling onto child 2.
    base = three_children()
    nodes = dict(base.nodes)
    nodes[1] = NodeView(1, None, 0, True, None, 4, -4.5, pending=1)
    nodes[2] = NodeView(2, 1, 1, True, -1.0, 1, -1.0, pending=1)
    pending = TreeView(nodes, base.children, base.root)
    assert select(base, c=5.0, k_max=4, max_depth=3).parent == 2
    sel = select(pending, c=5.0, k_max=4, max_depth=3)
    assert sel.parent == 1 and sel.scores["virtual"] == pytest.approx(5 * math.sqrt(math.log(5) / 1.25))
    # Q still comes from completed visits: child 2's mean is unchanged by the pending visit
    assert nodes[2].value_sum / nodes[2].visits == -1.0 and nodes[2].n == 2
