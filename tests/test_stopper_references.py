"""The stopper's references: a pure function of the snapshot the coordinator hands over."""

from searchmgr.stoppers.references import references
from searchmgr.store import Node, NodeStatus
from searchmgr.tasks import make_task

OBJ = make_task("toy", {"preset": "smoke"}).objective  # val/loss, minimised


def node(i, parent, depth, val=None, status=NodeStatus.DONE):
    return Node(id=i, search_id=1, parent_id=parent, depth=depth, start_step=10 * (depth - 1) if depth else 0,
                end_step=10 * depth, recipe={"lr": 1.0}, status=status, source="x", val_score=val, test_score=None,
                utility=None if val is None else -val, visits=1, value_sum=0.0, steps_trained=10, train_s=None,
                checkpoint=None, checkpoint_sha256=None, decision_id=None, error=None, created_at=0.0,
                finished_at=None)


TREE = [node(1, None, 0), node(2, 1, 1, 0.9), node(3, 1, 1, 0.7), node(4, 1, 1, 1.2, NodeStatus.PRUNED),
        node(5, 3, 2, 0.5), node(6, 5, 3, 0.4)]
SERIES = {2: [1.1, 1.02, 0.95, 0.9], 3: [0.9, 0.81, 0.76, 0.7], 4: [1.4, 1.33, 1.25, 1.2], 5: [0.6, 0.55, 0.52, 0.5],
          6: [0.48, 0.44, 0.43, 0.4]}
NEW = node(7, 1, 1, None, NodeStatus.RUNNING)


def refs(reference, with_noise=False):
    return references(NEW, TREE + [NEW], OBJ, max_depth=3, reference=reference, with_noise=with_noise, series=SERIES)


def test_best_and_median_at_the_nodes_depth():
    assert refs("best").best_here == 0.7 and refs("best").reference_step is None
    assert refs("median").best_here == 0.9  # 0.7, 0.9 and the pruned 1.2
    assert refs("best").best_all == 0.4 and refs("best").peers == () and refs("best").noise is None


def test_horizon_judges_against_the_best_complete_schedule_at_its_end():
    r = refs("horizon")
    assert (r.best_here, r.reference_step) == (0.4, 30)


def test_rank_hands_over_the_peers_with_their_curves():
    peers = {p.node_id: p for p in refs("rank").peers}
    assert set(peers) == {2, 3, 4}  # finished at depth 1, the new node itself excluded
    assert peers[3].values == (0.9, 0.81, 0.76, 0.7) and peers[3].final == 0.7 and peers[4].final is None  # pruned: no end


def test_noise_is_pooled_only_when_asked():
    assert refs("best", with_noise=True).noise is not None and refs("best").noise is None
