"""Cross-knob constraints are data: each kind checks recipes, describes itself and refuses a bad declaration."""

import pytest

from searchmgr.prompts import render_surface
from searchmgr.surface import ActionSurface, Constraint, ConstraintKind, Knob, RecipeError, Role, Scale


def knob(name, low=0.0, high=1.0, integer=False):
    return Knob(name, low, high, Scale.LINEAR, 0.5, Role.REGULARIZATION, name, integer=integer)


SURFACE = ActionSurface(
    (knob("lo"), knob("hi"), knob("w1"), knob("w2")),
    constraints=(Constraint(ConstraintKind.AT_MOST, ("lo", "hi"), why="a floor below a ceiling"),
                 Constraint(ConstraintKind.SUM_AT_MOST, ("w1", "w2"), 1.0, why="the loss weights share 1")))


def test_at_most_and_sum_at_most_reject_with_the_rule():
    assert SURFACE.check({"lo": 0.2, "hi": 0.3, "w1": 0.5, "w2": 0.5})
    with pytest.raises(RecipeError, match=r"lo=0.4 > hi=0.3: lo must be at most hi \(a floor below a ceiling\)"):
        SURFACE.check({"lo": 0.4, "hi": 0.3, "w1": 0.5, "w2": 0.5})
    with pytest.raises(RecipeError, match=r"the sum is 1.2: w1 \+ w2 must be at most 1"):
        SURFACE.check({"lo": 0.2, "hi": 0.3, "w1": 0.6, "w2": 0.6})


def test_constraints_are_readable_data_and_reach_the_prompt():
    assert [c.describe() for c in SURFACE.constraints][1] == {
        "kind": "sum_at_most", "knobs": ["w1", "w2"], "value": 1.0, "why": "the loss weights share 1",
        "text": "w1 + w2 must be at most 1 (the loss weights share 1)"}
    assert "- constraint: lo must be at most hi (a floor below a ceiling)" in render_surface(SURFACE)


@pytest.mark.parametrize("make,message", [
    (lambda: ActionSurface((knob("a"),), (Constraint(ConstraintKind.AT_MOST, ("a", "b")),)), "unknown knob"),
    (lambda: ActionSurface((knob("a"),), (Constraint(ConstraintKind.DIVIDES, ("a",), 8),)), "integer=True"),
    (lambda: Constraint(ConstraintKind.DIVIDES, ("a", "b"), 8), "binds 1 knob"),
    (lambda: Constraint(ConstraintKind.SUM_AT_MOST, ("a", "b")), "needs value="),
])
def test_a_bad_constraint_is_refused_when_declared(make, message):
    with pytest.raises(ValueError, match=message):
        make()
