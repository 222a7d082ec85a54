"""The ``llm`` early stopper against a scripted local chat-completions server."""

from __future__ import annotations

import json
import math
import time

import pytest
from fake_openai_server import FakeOpenAI, always_stop

from searchmgr.managers.openai_backend import BackendSettings
from searchmgr.prompts import STOPPER_PROMPT_VERSION, spec_hash, stopper_system_prompt
from searchmgr.search import explore
from searchmgr.stoppers import StopContext
from searchmgr.stoppers.llm import LLMStopper, parse_stop, trend
from searchmgr.store import DecisionKind, NodeStatus, TreeStore
from searchmgr.tasks import make_task

OBJ = make_task("toy", {"preset": "smoke"}).objective
STOP = json.dumps({"verdict": "STOP", "reason": "flat and far behind the best"})
CONT = json.dumps({"verdict": "CONTINUE", "reason": "still improving"})


def ctx(step, trajectory, best=1.0, node=5, min_step=40):
    return StopContext(node, 2, step, 0, 100, min_step, OBJ, tuple(trajectory), best, best)


def stopper(url, **kw) -> LLMStopper:
    s = BackendSettings(base_url=url, model="fake", timeout_s=2, max_retries=0, backoff_s=0)
    return LLMStopper(s, **{"asynchronous": False, **kw})


HOPELESS = [(20, 2.0), (30, 2.1), (40, 2.2)]


def test_parse_stop():
    assert parse_stop(STOP) == (True, "flat and far behind the best")
    assert parse_stop("```json\n" + CONT + "\n```") == (False, "still improving")
    assert parse_stop('{"verdict": "stop", "reason": ""}') == (True, "(no reason given)")
    for bad in ("STOP", "", '{"verdict": "MAYBE", "reason": "x"}', '{"reason": "x"}', "[1, 2]", '{"verdict": 1}'):
        assert parse_stop(bad) is None, bad


def test_trend_reports_slope_projection_and_needed_slope():
    rate, projected, needed = trend(ctx(40, HOPELESS), window=3)
    assert rate == pytest.approx(1.0)  # +0.1 per 10 steps = +1 per 100
    assert projected == pytest.approx(2.2 + 0.01 * 60)
    assert needed == pytest.approx(100 * (1.0 - 2.2) / 60)
    assert trend(ctx(20, HOPELESS[:1]), window=3) == (None, None, None)


def test_stop_answer_is_recorded_with_its_trace():
    with FakeOpenAI([{"content": STOP, "usage": [222, 11]}]) as srv:
        v = stopper(srv.base_url).should_stop(ctx(40, HOPELESS))
    assert v.stop and v.record and v.reason == "flat and far behind the best"
    assert v.trace["raw"] == STOP and v.trace["latency_s"] > 0
    assert (v.trace["prompt_tokens"], v.trace["completion_tokens"]) == (222, 11)
    assert v.trace["prompt_version"] == STOPPER_PROMPT_VERSION
    assert v.trace["prompt_hash"] == spec_hash(stopper_system_prompt())
    assert v.trace["context"]["trajectory"] == [[20, 2.0], [30, 2.1], [40, 2.2]]
    system, user = srv.requests[0]["body"]["messages"]
    assert "Only the validation score decides" in system["content"] and "slope" in system["content"]
    assert "step 40: 2.2" in user["content"] and "would need a slope" in user["content"]
    assert srv.requests[0]["body"]["response_format"]["type"] == "json_schema"


def test_no_request_before_min_step_without_a_best_or_with_one_point():
    with FakeOpenAI(default=always_stop()) as srv:
        s = stopper(srv.base_url)
        assert not s.should_stop(ctx(30, HOPELESS[:2])).stop  # before min_step
        assert not s.should_stop(ctx(60, HOPELESS, best=None, node=6)).stop  # nothing to beat
        assert not s.should_stop(ctx(40, [(40, 2.2)], node=7)).stop  # no slope yet
    assert srv.requests == []


@pytest.mark.parametrize("answer", ["I would stop.", "", '{"verdict": "PAUSE", "reason": "?"}', {"status": 500}])
def test_invalid_answers_and_endpoint_errors_count_as_continue(answer):
    with FakeOpenAI([answer]) as srv:
        v = stopper(srv.base_url).should_stop(ctx(40, HOPELESS))
    assert not v.stop and v.record
    assert "counts as CONTINUE" in v.reason


def test_rate_limit_every_n_evaluations_and_seconds():
    with FakeOpenAI(default=lambda body: CONT) as srv:
        s = stopper(srv.base_url, every_evals=2)
        records = [s.should_stop(ctx(40 + 10 * i, HOPELESS + [(40 + 10 * j, 2.2) for j in range(1, i + 1)])).record
                   for i in range(5)]
        assert records == [True, False, True, False, True]
        t = stopper(srv.base_url, every_evals=1, every_s=60.0)
        assert [t.should_stop(ctx(40 + 10 * i, HOPELESS, node=9)).record for i in range(3)] == [True, False, False]


def test_asynchronous_answers_apply_at_a_later_evaluation_and_expire_with_their_segment():
    with FakeOpenAI(default=lambda body: STOP, delay=0.2) as srv:
        s = stopper(srv.base_url, asynchronous=True, every_evals=1)
        t0 = time.perf_counter()
        first = s.should_stop(ctx(40, HOPELESS))
        assert not first.stop and not first.record and time.perf_counter() - t0 < 0.15  # training did not wait
        s._pending.future.result(timeout=5)
        later = s.should_stop(ctx(50, HOPELESS + [(50, 2.3)]))
        assert later.stop and later.record and "(asked at step 40)" in later.reason
        assert later.trace["context"]["step"] == 40 and later.trace["context"]["answered_at_step"] == 50
        # an answer still on its way when its segment ends is dropped
        s.should_stop(ctx(60, HOPELESS + [(60, 2.4)]))
        assert s._pending is not None
        v = s.should_stop(ctx(40, HOPELESS, node=6))
        assert not v.stop and s.dropped == 1
        s.close()


def test_search_with_llm_stopper_prunes_only_after_the_minimum_step(tmp_path):
    with FakeOpenAI(default=always_stop()) as srv:
        explore(["task=toy", "preset=smoke", "segment_steps=20", "eval_every=4", "max_depth=2", "budget.steps=100",
                 "stopper.name=llm", "stopper.every_evals=1", f"manager.base_url={srv.base_url}",
                 "manager.timeout_s=2", f"out={tmp_path / 'run'}"])
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        sid = store.search()["id"]
        nodes = store.nodes(sid)
        stops = store.decisions(sid, kind=DecisionKind.STOPPER)
    assert srv.requests and stops
    pruned = [n for n in nodes if n.status is NodeStatus.PRUNED]
    assert pruned and all(n.source != "fixed" for n in pruned)
    min_steps = math.ceil(0.4 * 20)
    assert all(n.steps_trained >= min_steps for n in pruned)
    for d in stops:
        assert d.source == "llm" and d.prompt_hash and d.raw_response and d.latency_s is not None
        assert d.prompt_tokens == 100 and d.context["trajectory"]
        if d.applied:
            assert d.verdict == "stop" and d.context["answered_at_step"] - d.context["segment"][0] >= min_steps


def test_horizon_reference_is_the_best_complete_schedule(tmp_path):
    """stopper.reference=horizon: a segment is judged at the end of the schedule against the best complete one."""
    with FakeOpenAI(default=always_stop()) as srv:
        explore(["task=toy", "preset=smoke", "segment_steps=20", "eval_every=4", "max_depth=2", "budget.steps=100",
                 "stopper.name=llm", "stopper.every_evals=1", "stopper.reference=horizon",
                 "uct.fixed=first",  # the fixed schedule is complete before any segment is judged against it
                 f"manager.base_url={srv.base_url}", "manager.timeout_s=2", f"out={tmp_path / 'run'}"])
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        sid = store.search()["id"]
        nodes = store.nodes(sid)
        stops = store.decisions(sid, kind=DecisionKind.STOPPER)
    fixed_end = next(n for n in nodes if n.source == "fixed" and n.depth == 2)
    assert stops
    for d in stops:
        assert d.context["judged_at"] == 40
        assert d.context["best_at_depth"] <= fixed_end.val_score  # the best complete schedule when it was asked
    assert "reached at step 40 (the score to beat)" in srv.requests[0]["body"]["messages"][-1]["content"]
