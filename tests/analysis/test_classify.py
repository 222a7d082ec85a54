"""The trajectory labels and the verdict rules of searchmgr.analysis.classify, on hand-made trajectories."""

from __future__ import annotations

import math

import pytest

from searchmgr.analysis.classify import Label, Part, Verdict, analyse_paths, classify, verdict, zigzag
from searchmgr.analysis.run import KnobInfo
from searchmgr.store import Node, NodeStatus
from searchmgr.surface import Role, Scale

DROPOUT = KnobInfo("dropout", 0.0, 0.5, Scale.LINEAR, Role.REGULARIZATION)
UNIT = KnobInfo("x", 0.0, 1.0, Scale.LINEAR, Role.REGULARIZATION)
LR = KnobInfo("lr", 1e-4, 3e-2, Scale.LOG, Role.OPTIMIZER)
WIDTH = KnobInfo("width", 16, 1024, Scale.LOG, Role.CAPACITY)


@pytest.mark.parametrize("values, knob, label, reversals", [
    ([0.1, 0.1, 0.1, 0.1], DROPOUT, Label.CONSTANT, 0),
    ([0.1, 0.105, 0.1, 0.108], DROPOUT, Label.CONSTANT, 0),  # wiggles of 1-1.6 % of the range
    ([0.2], DROPOUT, Label.CONSTANT, 0),  # one segment cannot move
    ([0.0, 0.1, 0.2, 0.3], DROPOUT, Label.INCREASING, 0),
    ([0.0, 0.1, 0.1, 0.2], DROPOUT, Label.INCREASING, 0),  # a hold is not a reversal
    ([0.0, 0.1, 0.095, 0.2], DROPOUT, Label.INCREASING, 0),  # a dip of 1 % of the range is noise
    ([0.0, 0.015, 0.03, 0.045], UNIT, Label.INCREASING, 0),  # slow drift: no single step exceeds tol
    ([0.0, 0.3, 0.29, 0.5], UNIT, Label.INCREASING, 0),
    ([0.3, 0.2, 0.2, 0.0], DROPOUT, Label.DECREASING, 0),
    ([1e-3, 5e-4, 2.5e-4], LR, Label.DECREASING, 0),
    ([0.0, 0.2, 0.1], DROPOUT, Label.OSCILLATING, 1),  # up then down: one reversal
    ([0.0, 0.2, 0.05, 0.25], DROPOUT, Label.OSCILLATING, 2),
    ([0.1, 0.0, 0.1, 0.0, 0.1], DROPOUT, Label.OSCILLATING, 3),
    ([0.0, 0.3, 0.27, 0.5], UNIT, Label.OSCILLATING, 2),  # a 3 % retrace exceeds tol = 2 %: down, then up again
])
def test_labels(values, knob, label, reversals):
    t = classify(values, knob)
    assert t.label is label
    assert t.reversals == reversals


def test_log_knobs_are_judged_on_log_values():
    lr = [1e-4, 2e-4, 1.5e-4]
    # on the log scale: x2 (12 % of the log range) then x0.75 (5 %): an oscillation
    assert classify(lr, LR).label is Label.OSCILLATING
    # the same numbers on a linear knob of the same range move 0.3 % of it: constant
    assert classify(lr, KnobInfo("lr", 1e-4, 3e-2, Scale.LINEAR, Role.OPTIMIZER)).label is Label.CONSTANT
    # a 1 % relative wiggle of a log knob is constant
    assert classify([1e-3, 1.01e-3, 1e-3], LR).label is Label.CONSTANT


def test_numbers_behind_the_label():
    t = classify([0.0, 0.2, 0.05, 0.25], DROPOUT)
    assert t.amplitude == pytest.approx(0.5)  # 0.25 of a 0.5 range
    assert t.net_range == pytest.approx(0.5)
    assert t.net_rel is None  # starts at 0: no relative change
    t = classify([1e-3, 5e-4, 2.5e-4], LR)
    assert t.net_rel == pytest.approx(-0.75)
    assert t.net_range == pytest.approx(math.log(0.25) / math.log(300))
    assert t.amplitude == pytest.approx(-t.net_range)
    t = classify([0.2, 0.1, 0.3], DROPOUT)
    assert t.net_rel == pytest.approx(0.5)


def test_tolerance_is_a_parameter():
    assert classify([0.0, 0.1, 0.095, 0.2], DROPOUT, tol=0.005).label is Label.OSCILLATING
    assert classify([0.0, 0.2, 0.1], DROPOUT, tol=0.25).label is Label.INCREASING  # the 0.2 retrace is within tol
    assert classify([0.0, 0.2, 0.1], DROPOUT, tol=0.45).label is Label.CONSTANT  # amplitude 0.4 <= tol


def test_zigzag_direction():
    assert zigzag([0.0, 0.01, -0.05], 0.02) == (0, -1)
    assert zigzag([0.0, 0.0], 0.02) == (0, 0)
    assert zigzag([], 0.02) == (0, 0)


# -- verdicts ----------------------------------------------------------------------


def node(nid: int, parent: int | None, depth: int, recipe: dict) -> Node:
    return Node(id=nid, search_id=1, parent_id=parent, depth=depth, start_step=10 * max(depth - 1, 0),
                end_step=10 * depth, recipe=recipe, status=NodeStatus.DONE, source="heuristic", val_score=1.0,
                test_score=1.0, utility=-1.0, visits=1, value_sum=-1.0, steps_trained=10, train_s=0.1,
                checkpoint=None, checkpoint_sha256=None, decision_id=None, error=None, created_at=0.0,
                finished_at=0.0)


_ids = iter(range(1000, 100000))


def path(**trajectories: list[float]) -> list[Node]:
    """A root-first path whose segments carry the given per-knob trajectories."""
    names = list(trajectories)
    n = len(trajectories[names[0]])
    root = node(next(_ids), None, 0, {k: v[0] for k, v in trajectories.items()})
    out = [root]
    for i in range(n):
        out.append(node(next(_ids), out[-1].id, i + 1, {k: trajectories[k][i] for k in names}))
    return out


KNOBS = (WIDTH, DROPOUT, LR)
GROW = [32, 64, 128, 256]
OSC = [0.0, 0.2, 0.05, 0.25]
UP = [0.0, 0.1, 0.2, 0.3]


def test_supports_when_capacity_grows_and_regularization_oscillates():
    paths = [path(width=GROW, dropout=OSC, lr=[1e-3] * 4) for _ in range(3)]
    an = analyse_paths(paths, KNOBS)
    assert (an.capacity, an.regularization, an.verdict) == (Part.SUPPORTED, Part.SUPPORTED, Verdict.SUPPORTS)
    res = {r.knob: r for r in an.knobs}
    assert res["width"].agreement == 3 and res["width"].conforms is True
    assert res["lr"].evidence is False and res["lr"].conforms is None  # optimizer knobs are not judged


def test_contradicts_when_regularization_only_accumulates():
    paths = [path(dropout=UP, lr=[1e-3, 1e-3, 5e-4, 5e-4])]
    an = analyse_paths(paths, (DROPOUT, LR))
    assert an.capacity is Part.UNTESTED and an.regularization is Part.CONTRADICTED
    assert an.verdict is Verdict.CONTRADICTS
    assert any("no capacity knob" in n for n in an.notes)


def test_inconclusive_cases():
    # one part supported, the other contradicted
    an = analyse_paths([path(width=GROW, dropout=UP, lr=[1e-3] * 4)], KNOBS)
    assert (an.capacity, an.regularization, an.verdict) == (Part.SUPPORTED, Part.CONTRADICTED, Verdict.INCONCLUSIVE)
    # two regularization knobs disagree: mixed
    wd = KnobInfo("wd", 0.0, 0.5, Scale.LINEAR, Role.REGULARIZATION)
    an = analyse_paths([path(dropout=OSC, wd=UP)], (DROPOUT, wd))
    assert an.regularization is Part.MIXED and an.verdict is Verdict.INCONCLUSIVE
    # nothing moved
    an = analyse_paths([path(width=[64] * 4, dropout=[0.1] * 4, lr=[1e-3] * 4)], KNOBS)
    assert (an.capacity, an.regularization, an.verdict) == (Part.UNTESTED, Part.UNTESTED, Verdict.INCONCLUSIVE)
    # the best path oscillates but most top-k paths say otherwise: not evidence
    paths = [path(dropout=OSC)] + [path(dropout=UP) for _ in range(3)]
    an = analyse_paths(paths, (DROPOUT,))
    r = an.knobs[0]
    assert r.agreement == 1 and r.k == 4 and r.distribution == {"oscillating": 1, "monotone increasing": 3}
    assert not r.evidence and an.verdict is Verdict.INCONCLUSIVE
    # half of the top-k agreeing is enough
    an = analyse_paths([path(dropout=OSC), path(dropout=OSC), path(dropout=UP), path(dropout=UP)], (DROPOUT,))
    assert an.knobs[0].evidence and an.verdict is Verdict.SUPPORTS
    # too short to see an oscillation
    an = analyse_paths([path(dropout=[0.0, 0.2])], (DROPOUT,))
    assert an.knobs[0].best.label is Label.INCREASING
    assert an.verdict is Verdict.INCONCLUSIVE and any("at least 3" in n for n in an.notes)
    # no path at all
    assert analyse_paths([], KNOBS).verdict is Verdict.INCONCLUSIVE


def test_verdict_table():
    S, C, M, U = Part.SUPPORTED, Part.CONTRADICTED, Part.MIXED, Part.UNTESTED
    assert verdict(S, S) is verdict(S, U) is verdict(U, S) is Verdict.SUPPORTS
    assert verdict(C, C) is verdict(C, U) is verdict(U, C) is Verdict.CONTRADICTS
    for a, b in [(S, C), (C, S), (M, S), (S, M), (M, C), (C, M), (U, U), (M, U)]:
        assert verdict(a, b) is Verdict.INCONCLUSIVE, (a, b)
