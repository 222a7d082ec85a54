"""The per-request response schema: every answer it allows is admitted, and it is what the backend sends."""

import dataclasses
import json
import math

import jsonschema
import pytest
from fake_openai_server import FakeOpenAI
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from manager_contexts import make_context

from searchmgr.decision import decision_schema, verify
from searchmgr.managers.llm import LLMManager
from searchmgr.managers.openai_backend import BackendSettings
from searchmgr.request_schema import admissible_range, request_schema
from searchmgr.surface import Scale
from searchmgr.tasks import make_task

# every knob kind: log and linear, float and integer (grpo's), with and without room at the bounds
TASKS = ("toy", "arm_scared", "tinystories_aux", "grpo_arith")
SURFACES = {name: dataclasses.replace(make_task(name, {"preset": "smoke"}).surface, constraints=())
            for name in TASKS}  # grpo's cross-knob rule is the verifier's alone: a schema cannot say it


@st.composite
def recipes(draw, surface):
    """A parent recipe anywhere inside the surface, bounds included."""
    out = {}
    for k in surface.knobs:
        if k.integer:
            out[k.name] = draw(st.integers(math.ceil(k.low), math.floor(k.high)))
        elif k.scale is Scale.LOG:
            out[k.name] = draw(st.one_of(st.sampled_from([k.low, k.high]), st.floats(
                math.log(k.low), math.log(k.high)).map(lambda x, k=k: min(max(math.exp(x), k.low), k.high))))
        else:
            out[k.name] = draw(st.one_of(st.sampled_from([k.low, k.high]), st.floats(k.low, k.high)))
    return surface.check(out)


@st.composite
def instances(draw, schema):
    """Any JSON value the schema allows (the keywords request_schema uses; strings kept short)."""
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    if "anyOf" in schema:
        return draw(instances(draw(st.sampled_from(schema["anyOf"]))))
    kind = schema["type"]
    if kind == "object":
        return {key: draw(instances(sub)) for key, sub in schema["properties"].items()
                if key in schema["required"] or draw(st.booleans())}
    if kind == "array":
        if "prefixItems" in schema:
            return [draw(instances(sub)) for sub in schema["prefixItems"]]
        return draw(st.lists(instances(schema["items"]), max_size=3))
    if kind == "number":
        return draw(st.one_of(st.sampled_from([schema["minimum"], schema["maximum"]]),
                              st.floats(schema["minimum"], schema["maximum"])))
    assert kind == "string", kind
    return draw(st.text(max_size=8))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), task=st.sampled_from(TASKS))
def test_every_schema_conforming_answer_is_admitted(data, task):
    surface = SURFACES[task]
    parent = data.draw(recipes(surface))
    schema = request_schema(surface, parent)
    answer = data.draw(instances(schema))
    jsonschema.Draft202012Validator(schema).validate(answer)  # the generator only makes conforming answers
    verdict = verify(json.dumps(answer), surface, parent)
    assert verdict.ok, (verdict.rejection, answer, parent)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), task=st.sampled_from(TASKS), n=st.integers(1, 6))
def test_with_siblings_every_conforming_answer_is_a_new_recipe(data, task, n):
    """Siblings made the way the search makes them (the parent held, admitted answers): the schema admits no
    answer that repeats one."""
    surface = SURFACES[task]
    parent = data.draw(recipes(surface))
    siblings = [dict(parent)]
    for _ in range(n - 1):
        v = verify(json.dumps(data.draw(instances(request_schema(surface, parent)))), surface, parent)
        siblings.append(v.recipe)
    schema = request_schema(surface, parent, siblings)
    # siblings can take every value of every knob only on tiny ranges; then the schema cannot exclude them
    assume("anyOf" in schema["properties"]["updates"])
    answer = data.draw(instances(schema))
    jsonschema.Draft202012Validator(schema).validate(answer)
    verdict = verify(json.dumps(answer), surface, parent, siblings)
    assert verdict.ok, (verdict.rejection, answer, parent, siblings)


def test_siblings_narrow_the_schema_to_new_recipes():
    """The answer SmolLM2 repeated on toy (the same dropout step as a sibling, the rest held) no longer fits."""
    surface = SURFACES["toy"]
    parent = make_task("toy", {"preset": "smoke"}).base_recipe()
    base = {"diagnosis": "", "control_audit": [], "expected_outcome": "", "watch_items": []}
    repeat = {**base, "updates": [{"knob": "lr", "op": "scale", "value": 1.0},
                                  {"knob": "dropout", "op": "add", "value": 0.05},
                                  {"knob": "weight_decay", "op": "hold", "value": 0.0}]}
    sibling = verify(repeat, surface, parent).recipe
    assert jsonschema.Draft202012Validator(request_schema(surface, parent)).is_valid(repeat)
    narrowed = jsonschema.Draft202012Validator(request_schema(surface, parent, [parent, sibling]))
    assert not narrowed.is_valid(repeat)
    assert not narrowed.is_valid({**base, "updates": [{"knob": k.name, "op": "hold", "value": 0.0}
                                                      for k in surface.knobs]})  # the held parent, too
    assert narrowed.is_valid({**base, "updates": [{"knob": "lr", "op": "scale", "value": 1.0},
                                                  {"knob": "dropout", "op": "add", "value": 0.1},
                                                  {"knob": "weight_decay", "op": "hold", "value": 0.0}]})


@pytest.mark.parametrize("task", TASKS)
def test_the_ranges_are_tight_and_loosen_nothing(task):
    """Just past either end of a knob's range the verifier rejects the change (non-integer knobs): the schema is
    exactly the admissible set, not a looser one; and the schema names only the surface's knobs, each once."""
    surface = SURFACES[task]
    parent = make_task(task, {"preset": "smoke"}).base_recipe()
    schema = request_schema(surface, parent)
    items = schema["properties"]["updates"]["prefixItems"]
    assert [i["properties"]["knob"]["enum"] for i in items] == [[n] for n in surface.names]
    assert schema["properties"]["updates"]["minItems"] == schema["properties"]["updates"]["maxItems"] == len(items)
    validator = jsonschema.Draft202012Validator(schema)
    for k in surface.knobs:
        if k.integer:
            continue
        r = admissible_range(k, parent[k.name])
        for value in (r.low, r.high):
            assert verify({"diagnosis": "", "control_audit": [], "expected_outcome": "",
                           "updates": [{"knob": k.name, "op": r.op, "value": value}]}, surface, parent).ok
        span = r.high - r.low
        for value in (r.low - 1e-3 * span, r.high + 1e-3 * span):
            assert not verify({"diagnosis": "", "control_audit": [], "expected_outcome": "",
                               "updates": [{"knob": k.name, "op": r.op, "value": value}]}, surface, parent).ok
            answer = {"diagnosis": "", "control_audit": [], "expected_outcome": "", "watch_items": [],
                      "updates": [{"knob": n.name, "op": "hold", "value": admissible_range(n, parent[n.name]).low}
                                  if n.name != k.name else {"knob": k.name, "op": r.op, "value": value}
                                  for n in surface.knobs]}
            assert not validator.is_valid(answer)
    # what the small model got wrong before: an unknown knob, a knob twice, a step too large
    base = {"diagnosis": "", "control_audit": [], "expected_outcome": "", "watch_items": []}
    assert not validator.is_valid({**base, "updates": [{"knob": "momentum", "op": "scale", "value": 1.0}]})
    first = surface.knobs[0].name
    twice = [{"knob": first, "op": "hold", "value": 1.0}] * len(items)
    assert len(items) == 1 or not validator.is_valid({**base, "updates": twice})


def test_the_openai_manager_sends_the_request_schema():
    ctx = make_context("toy")
    settings_ = BackendSettings(base_url=None, model="fake", timeout_s=5, max_retries=0, backoff_s=0)
    with FakeOpenAI(default=lambda body: "{}") as srv:
        m = LLMManager(dataclasses.replace(settings_, base_url=srv.base_url))
        p = m.propose(ctx)
        m_generic = LLMManager(dataclasses.replace(settings_, base_url=srv.base_url), response_schema="generic")
        m_generic.propose(ctx)
        llama = FakeOpenAI(default=lambda body: "{}", modes=("json_object_schema",)).start()
        try:
            LLMManager(dataclasses.replace(settings_, base_url=llama.base_url)).propose(ctx)
        finally:
            llama.stop()
    sent = srv.requests[0]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == request_schema(ctx.surface,
                                                                                               ctx.parent_recipe)
    assert p.request["endpoint"]["response_schema"] == "request"
    user = srv.requests[0]["body"]["messages"][1]["content"]
    assert "Admissible updates" in user and "- lr: scale with a factor in [0.5, 2]" in user
    assert srv.requests[1]["body"]["response_format"]["json_schema"]["schema"] == decision_schema()
    assert "Admissible updates" not in srv.requests[1]["body"]["messages"][1]["content"]
    # llama.cpp's JSON mode with a schema (after json_schema was refused) gets the same per-request schema
    assert llama.requests[-1]["body"]["response_format"] == {"type": "json_object", "schema": request_schema(
        ctx.surface, ctx.parent_recipe)}
