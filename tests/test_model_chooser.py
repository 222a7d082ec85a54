"""Choosers among the model's ranked candidates: ``model_llm`` against the fake endpoint, ``model_random``, and the
LLM stopper's rank and projection (no LLM server needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI

sys.path.insert(0, str(Path(__file__).parent / "managers"))
from manager_contexts import HEALTHY, make_context  # noqa: E402
from test_model import evidence_where  # noqa: E402

from searchmgr.decision import verify  # noqa: E402
from searchmgr.managers import manager_class  # noqa: E402
from searchmgr.managers.model import ModelManager  # noqa: E402
from searchmgr.managers.model_llm import ModelLLMManager, parse_choice  # noqa: E402
from searchmgr.managers.model_random import ModelRandomManager  # noqa: E402
from searchmgr.managers.openai_backend import BackendSettings  # noqa: E402
from searchmgr.prompts import CHOOSER_PROMPT_VERSION  # noqa: E402
from searchmgr.search import explore  # noqa: E402
from searchmgr.stoppers import Peer, StopContext  # noqa: E402
from searchmgr.stoppers.llm import LLMStopper, standing  # noqa: E402
from searchmgr.store import DecisionKind, TreeStore  # noqa: E402
from searchmgr.surface import same_recipe  # noqa: E402
from searchmgr.tasks import make_task  # noqa: E402


def pick(n: int, reason: str = "scripted pick") -> str:
    return json.dumps({"choice": n, "reason": reason})


def settings(url: str) -> BackendSettings:
    return BackendSettings(base_url=url, model="fake", timeout_s=2, max_retries=0, backoff_s=0)


def ctx_with_evidence(**kw):
    return make_context(hist=HEALTHY, evidence=evidence_where(lambda lr, d: lr), parent_utility=-0.5, **kw)


# the LLM chooser, one request at a time ---------------------------------------------------------

def test_a_chooser_that_answers_candidate_2_gets_candidate_2():
    ctx = ctx_with_evidence()
    ranking = ModelManager().ranking(ctx)
    with FakeOpenAI([pick(2, "second looks safer")]) as srv:
        p = ModelLLMManager(settings(srv.base_url)).propose(ctx)
    v = verify(p.raw, ctx.surface, ctx.parent_recipe)
    assert v.ok and same_recipe(v.recipe, ranking.ranked[1].candidate.recipe)
    assert not same_recipe(v.recipe, ranking.ranked[0].candidate.recipe)
    chooser = p.request["chooser"]
    assert (chooser["choice"], chooser["model_rank"], chooser["valid"]) == (2, 2, True)
    assert chooser["reason"] == "second looks safer" and len(chooser["candidates"]) == 5
    assert p.request["evidence"]["chosen"]["ucb_rank"] == 2 and p.prompt_version == CHOOSER_PROMPT_VERSION
    assert "second looks safer" in p.raw["diagnosis"] and p.latency_s > 0


def test_the_request_carries_the_candidates_and_an_enum_of_their_ids():
    ctx = ctx_with_evidence()
    with FakeOpenAI([pick(1)]) as srv:
        p = ModelLLMManager(settings(srv.base_url), top_k=4).propose(ctx)
    body = srv.requests[0]["body"]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "ranks candidate recipes" in system and "action surface" in system
    assert "## Candidate children" in user and "GP fitted on 24 scored segments" in user
    for row in p.request["chooser"]["candidates"]:
        assert f"- id {row['id']}: {row['change']}; predicted val/loss" in user
    assert user.index("## Telemetry") < user.index("## Candidate children")  # beside the telemetry
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["choice"]["enum"] == [1, 2, 3, 4]
    assert schema["additionalProperties"] is False and "updates" not in schema["properties"]


def test_an_answer_outside_the_enum_is_rejected_and_traced_and_explained_next_time():
    ctx = ctx_with_evidence()
    with FakeOpenAI([pick(7), pick(3)]) as srv:
        m = ModelLLMManager(settings(srv.base_url))
        bad = m.propose(ctx)
        v = verify(bad.raw, ctx.surface, ctx.parent_recipe)
        good = m.propose(ctx, [str(v.rejection)])
    assert not v.ok
    chooser = bad.request["chooser"]
    assert chooser["valid"] is False and chooser["choice"] is None and "choice 7 is not one of" in chooser["why"]
    assert '"choice": 7' in chooser["answer"]
    assert "your answer named no candidate: choice 7" in srv.requests[1]["body"]["messages"][1]["content"]
    assert verify(good.raw, ctx.surface, ctx.parent_recipe).ok and good.request["chooser"]["choice"] == 3


def test_a_full_decision_is_no_choice_without_the_own_flag():
    ctx = ctx_with_evidence()
    decision = json.dumps({"diagnosis": "d", "control_audit": [], "expected_outcome": "e", "watch_items": [],
                           "updates": [{"knob": "dropout", "op": "add", "value": 0.05}]})
    with FakeOpenAI([decision]) as srv:
        p = ModelLLMManager(settings(srv.base_url)).propose(ctx)
    assert not verify(p.raw, ctx.surface, ctx.parent_recipe).ok and p.request["chooser"]["valid"] is False


def test_with_the_own_flag_the_schema_admits_an_own_bounded_change():
    ctx = ctx_with_evidence()
    own = json.dumps({"choice": "own", "reason": "dropout for the gap",
                      "updates": [{"knob": "dropout", "op": "add", "value": 0.05}]})
    with FakeOpenAI([own]) as srv:
        p = ModelLLMManager(settings(srv.base_url), own=True).propose(ctx)
    schema = srv.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    assert [a["properties"]["choice"]["enum"] for a in schema["anyOf"]] == [[1, 2, 3, 4, 5], ["own"]]
    assert "updates" in schema["anyOf"][1]["properties"]
    assert '"choice": "own"' in srv.requests[0]["body"]["messages"][1]["content"]
    v = verify(p.raw, ctx.surface, ctx.parent_recipe)
    assert v.ok and v.recipe["dropout"] == pytest.approx(ctx.parent_recipe["dropout"] + 0.05)
    assert p.request["chooser"]["choice"] == "own" and p.request["chooser"]["model_rank"] is None


def test_without_evidence_the_chooser_takes_the_models_prior_and_asks_nothing():
    ctx = make_context(hist=HEALTHY)
    with FakeOpenAI([pick(1)]) as srv:
        p = ModelLLMManager(settings(srv.base_url)).propose(ctx)
    assert srv.requests == []
    assert p.raw == manager_class("heuristic")().propose(ctx).raw
    assert "prior" in p.request["chooser"]["fallback"] and p.request["chooser"]["choice"] is None


@pytest.mark.parametrize("text, expected", [
    (pick(2), (2, None)), ('{"choice": "3", "reason": "r"}', (3, None)), ("```json\n" + pick(5) + "\n```", (5, None)),
    (pick(6), (None, "choice 6 is not one of [1, 2, 3, 4, 5]")), ('{"choice": true}', (None, "choice True")),
    ('{"choice": "own", "reason": "r"}', (None, "choice 'own' is not one of")), ("pick two", (None, "no JSON")),
    ("[2]", (None, "JSON list")),
    ('{ "choice": 4, "reason": ");\n```\nThis is" }', (4, None)),  # a raw newline in the reason (SmolLM2, grpo_arith)
])
def test_parse_choice(text, expected):
    choice, _, _, why = parse_choice(text, [1, 2, 3, 4, 5], own=False)
    assert choice == expected[0]
    assert (why is None) if expected[1] is None else expected[1] in why


# the random chooser (the control) ---------------------------------------------------------

def test_random_chooser_picks_within_the_top_k_deterministically():
    picks = []
    for parent in range(2, 30):
        ctx = ctx_with_evidence(parent_id=parent)
        top = [r.candidate.recipe for r in ModelManager().ranking(ctx).ranked[:3]]
        p = ModelRandomManager(top_k=3).propose(ctx)
        again = ModelRandomManager(top_k=3).propose(ctx)
        assert p.raw == again.raw  # seeded: a run replays
        v = verify(p.raw, ctx.surface, ctx.parent_recipe)
        assert v.ok and any(same_recipe(v.recipe, t) for t in top)
        assert p.request["chooser"]["model_rank"] == 1 + [same_recipe(v.recipe, t) for t in top].index(True)
        picks.append(p.request["chooser"]["choice"])
    assert set(picks) == {1, 2, 3}


# whole searches against the fake endpoint ------------------------------------------------

RUN = ["task=toy", "preset=smoke", "segment_steps=10", "eval_every=5", "max_depth=2", "budget.steps=200",
       'stopper.name="none"', "manager.timeout_s=2",
       "manager.max_retries=0", "manager.backoff_s=0"]


def test_search_with_the_llm_chooser_trains_the_chosen_candidates(tmp_path):
    with FakeOpenAI([pick(9)], default=lambda body: pick(2)) as srv:
        explore(RUN + ["manager.name=model_llm", f"manager.base_url={srv.base_url}", f"out={tmp_path / 'run'}"])
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        sid = store.search()["id"]
        nodes = {n.id: n for n in store.nodes(sid)}
        ds = [d for d in store.decisions(sid, kind=DecisionKind.MANAGER) if d.source == "model_llm"]
    asked = [d for d in ds if d.context["chooser"].get("candidates")]
    assert len(asked) >= 3 and len(srv.requests) == len(asked)
    first = asked[0]
    assert first.verdict == "rejected" and not first.applied and "choice 9" in first.context["chooser"]["why"]
    for d in asked[1:]:
        assert d.verdict == "accepted" and d.applied and d.context["chooser"]["model_rank"] == 2
        assert same_recipe(nodes[d.child_id].recipe, d.context["chooser"]["candidates"][1]["recipe"])
    # with the shipped defaults, start points and holds are evidence before the manager is first asked: nothing
    # falls back to the model's prior (that case: test_without_evidence_the_chooser_takes_the_models_prior...)
    assert not any(d.context["chooser"].get("fallback") for d in ds)


def test_search_with_the_random_chooser_is_reproducible(tmp_path):
    recipes = []
    for name in ("a", "b"):
        explore(RUN + ["manager.name=model_random", f"out={tmp_path / name}"])
        with TreeStore(tmp_path / name / "tree.db") as store:
            recipes.append([n.recipe for n in store.nodes(store.search()["id"])])
    assert recipes[0] == recipes[1] and len(recipes[0]) > 8


# the LLM stopper: rank among comparable segments and the rule's projection ----------------------

OBJ = make_task("toy", {"preset": "smoke"}).objective


def test_standing_ranks_a_segment_among_its_peers_after_as_many_evaluations():
    peers = (Peer(1, (1.0, 0.9, 0.8), 0.7), Peer(2, (1.2, 1.1, 1.0), 0.9), Peer(3, (2.0, 1.9, 1.8), None),
             Peer(4, (0.5,), None))  # peer 4 was pruned after one evaluation: not comparable at the second
    ctx = StopContext(5, 2, 60, 40, 80, 50, OBJ, ((50, 1.5), (60, 1.05)), 0.7, 0.7, peers=peers)
    assert standing(ctx) == {"rank": 2, "of": 4, "evaluation": 2, "best_final": 0.7, "median_final": 0.9}
    assert standing(StopContext(5, 2, 60, 40, 80, 50, OBJ, ((50, 1.5), (60, 1.05)), 0.7, 0.7)) is None


def test_llm_stopper_request_shows_the_rank_and_the_rule_projection():
    peers = (Peer(1, (1.0, 0.9, 0.8), 0.7), Peer(2, (1.2, 1.1, 1.0), 0.9))
    ctx = StopContext(5, 2, 60, 40, 80, 50, OBJ, ((50, 1.3), (60, 1.2)), 0.7, 0.7, peers=peers)
    with FakeOpenAI([json.dumps({"verdict": "STOP", "reason": "bottom of its peers"})]) as srv:
        v = LLMStopper(settings(srv.base_url), asynchronous=False).should_stop(ctx)
    user = srv.requests[0]["body"]["messages"][1]["content"]
    assert "Rank among comparable segments (finished, same depth, after 2 evaluations): 3 of 3" in user
    assert "best 0.7, median 0.9" in user
    # the rule's projection: improvements only, x1.5, from 1.2 at step 60 to step 80 at -0.01 per step
    assert "optimistic projection (its best recent trend, improvements only) reaches 0.9 at step 80" in user
    assert v.stop and v.reason == "bottom of its peers"
    assert v.trace["context"]["standing"]["rank"] == 3 and v.trace["context"]["rule_projection"] == pytest.approx(0.9)
