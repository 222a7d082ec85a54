"""stopper.reference=rank: a segment is judged among its peers at the same depth and evaluation count."""

from searchmgr.stoppers import Peer, StopContext, stopper_class
from searchmgr.tasks import make_task

OBJ = make_task("toy", {"preset": "smoke"}).objective  # val/loss, minimised


def rank_stopper(quantile=0.5):
    return stopper_class("rule")(rank=True, quantile=quantile)


def ctx(trajectory, peers, best=0.5):
    step = trajectory[-1][0]
    return StopContext(9, 1, step, 0, 100, 40, OBJ, tuple(trajectory), best, best, peers=tuple(peers))


# four finished peers: their losses after 1, 2, 3 evaluations (steps 20, 40, 60) and at the end (step 100)
PEERS = [Peer(i, (1.0 + d, 0.9 + d, 0.8 + d, 0.7 + d, 0.6 + d), 0.6 + d) for i, d in enumerate((0.0, 0.05, 0.1, 0.15))]


def test_a_segment_behind_its_peers_that_cannot_catch_up_stops():
    v = rank_stopper().should_stop(ctx([(20, 1.5), (40, 1.5), (60, 1.5)], PEERS))
    assert v.stop and "behind 100% of 4 segments" in v.reason


def test_a_slow_starter_whose_curve_reaches_the_middle_survives():
    # behind every peer at step 60, but falling fast enough to pass their median (0.65 + 0.05 / 2) by step 100
    assert not rank_stopper().should_stop(ctx([(20, 1.6), (40, 1.3), (60, 1.0)], PEERS)).stop


def test_far_from_the_single_best_but_ahead_of_most_peers_survives():
    # the best reference (0.1) is far ahead, but the segment leads half its peers: the rank rule keeps it
    trajectory = [(20, 0.98), (40, 0.88), (60, 0.85)]
    assert not rank_stopper().should_stop(ctx(trajectory, PEERS, best=0.1)).stop
    assert stopper_class("rule")().should_stop(ctx(trajectory, PEERS, best=0.1)).stop  # the best rule prunes it


def test_too_few_peers_never_stop():
    assert not rank_stopper().should_stop(ctx([(20, 9.0), (40, 9.0), (60, 9.0)], PEERS[:2])).stop


def test_pruned_peers_count_where_they_have_evaluations():
    pruned = [Peer(10 + i, (1.0, 0.95, 0.9), None) for i in range(3)]
    # flat at 0.92 by its third evaluation: behind 6 of 7 peers there (pruned ones included), and its curve
    # cannot reach their median end
    v = rank_stopper().should_stop(ctx([(20, 0.93), (40, 0.92), (60, 0.92)], PEERS + pruned))
    assert v.stop and "behind 86% of 7 segments" in v.reason
    # at its second evaluation the pruned peers are level: it is not behind more than half of them -> continue
    assert not rank_stopper().should_stop(ctx([(20, 1.0), (40, 0.9)], PEERS + pruned)).stop
