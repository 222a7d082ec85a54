import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from searchmgr.decision import Decision, KnobUpdate, RejectionKind, verify
from searchmgr.surface import ActionSurface, Constraint, ConstraintKind, Knob, Role, Scale

PARENT = {"lr": 1e-3, "dropout": 0.1, "weight_decay": 0.0}


def decision(*updates):
    return {
        "diagnosis": "d", "control_audit": [], "expected_outcome": "e", "watch_items": [],
        "updates": [dict(knob=k, op=op, value=v) for k, op, v in updates],
    }


def test_accepts_a_valid_scale_and_add(toy_surface):
    v = verify(decision(("lr", "scale", 0.5), ("dropout", "add", 0.05)), toy_surface, PARENT)
    assert v.ok
    assert v.recipe == pytest.approx({"lr": 5e-4, "dropout": 0.15, "weight_decay": 0.0})


def test_hold_and_empty_updates_keep_the_parent(toy_surface):
    assert verify(decision(("lr", "hold", 123.0)), toy_surface, PARENT).recipe == PARENT
    assert verify(decision(), toy_surface, PARENT).recipe == PARENT


@pytest.mark.parametrize("raw,kind", [
    ("not json at all", RejectionKind.MALFORMED_JSON),
    ("", RejectionKind.MALFORMED_JSON),
    ("[1, 2, 3]", RejectionKind.MALFORMED_JSON),
    ('{"diagnosis": "x"}', RejectionKind.MISSING_FIELDS),
    (json.dumps(decision(("momentum", "scale", 1.1))), RejectionKind.UNKNOWN_KNOB),
    (json.dumps(decision(("dropout", "add", 0.45))), RejectionKind.OUT_OF_BOUNDS),
    (json.dumps(decision(("lr", "scale", 0.01))), RejectionKind.OUT_OF_BOUNDS),
    (json.dumps(decision(("lr", "scale", 3.0))), RejectionKind.STEP_TOO_LARGE),
    (json.dumps(decision(("weight_decay", "add", 0.2))), RejectionKind.STEP_TOO_LARGE),
    (json.dumps(decision(("lr", "explode", 2.0))), RejectionKind.MISSING_FIELDS),
    (json.dumps(decision(("lr", "scale", 1.1), ("lr", "scale", 1.1))), RejectionKind.MISSING_FIELDS),
    ('{"diagnosis": "d", "control_audit": [], "updates": [], "expected_outcome": "e", "rm -rf": 1}',
     RejectionKind.MISSING_FIELDS),
])
def test_named_rejections(toy_surface, raw, kind):
    v = verify(raw, toy_surface, PARENT)
    assert not v.ok and v.recipe is None
    assert v.rejection.kind is kind, v.rejection


def test_non_finite_values_are_rejected(toy_surface):
    for bad in ("NaN", "Infinity"):
        raw = json.dumps(decision(("lr", "scale", 1.0)))[:-1].replace('"value": 1.0', f'"value": {bad}') + "}"
        v = verify(raw, toy_surface, PARENT)
        assert not v.ok


def test_json_inside_code_fence_and_prose(toy_surface):
    text = "Here is my decision:\n```json\n" + json.dumps(decision(("lr", "scale", 0.8))) + "\n```\nThanks."
    v = verify(text, toy_surface, PARENT)
    assert v.ok and v.recipe["lr"] == pytest.approx(8e-4)


def test_duplicate_sibling_is_rejected(toy_surface):
    sibling = {"lr": 5e-4, "dropout": 0.1, "weight_decay": 0.0}
    v = verify(decision(("lr", "scale", 0.5)), toy_surface, PARENT, [sibling])
    assert v.rejection.kind is RejectionKind.DUPLICATE_SIBLING
    assert verify(decision(("lr", "scale", 0.6)), toy_surface, PARENT, [sibling]).ok


def test_cross_knob_constraint_is_enforced():
    surface = ActionSurface(
        (Knob("gens", 2, 16, Scale.LINEAR, 0.5, Role.CAPACITY, "generations", integer=True),),
        constraints=(Constraint(ConstraintKind.DIVIDES, ("gens",), 16, why="the batch of 16"),))
    v = verify(decision(("gens", "add", 1)), surface, {"gens": 4})
    assert v.rejection.kind is RejectionKind.CONSTRAINT
    assert v.rejection.reason == "gens=5: gens must divide 16 (the batch of 16); choose one of [2, 4, 8, 16]"
    assert verify(decision(("gens", "add", 4)), surface, {"gens": 4}).recipe == {"gens": 8}


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.text(max_size=5),
                   st.none(), st.booleans())
updates = st.lists(st.fixed_dictionaries({"knob": st.sampled_from(["lr", "dropout", "weight_decay", "x", ""]),
                                          "op": st.sampled_from(["scale", "add", "hold", "mul"]),
                                          "value": values}), max_size=4)
raws = st.one_of(
    st.text(max_size=200),
    st.fixed_dictionaries({"diagnosis": st.text(max_size=10), "control_audit": st.just([]),
                           "updates": updates, "expected_outcome": st.text(max_size=10)}),
    st.dictionaries(st.text(max_size=8), values, max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(raw=raws, as_text=st.booleans())
def test_hostile_input_never_yields_an_invalid_recipe(toy_surface, raw, as_text):
    if as_text and not isinstance(raw, str):
        raw = json.dumps(raw, allow_nan=True)
    v = verify(raw, toy_surface, PARENT)
    if v.ok:
        toy_surface.check(v.recipe)
        for k in toy_surface.knobs:
            assert k.in_bounds(v.recipe[k.name]) and math.isfinite(v.recipe[k.name])
            assert k.step_ok(PARENT[k.name], v.recipe[k.name]) or PARENT[k.name] == v.recipe[k.name]
    else:
        assert v.recipe is None and v.rejection.reason


def test_decision_schema_is_json_schema():
    schema = Decision.model_json_schema()
    assert set(schema["required"]) >= {"diagnosis", "control_audit", "updates", "expected_outcome"}
    assert KnobUpdate.model_json_schema()["properties"]["op"]["enum"] == ["scale", "add", "hold"]
