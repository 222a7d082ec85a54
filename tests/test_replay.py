"""``replay``: an LLM search re-run from its decision traces, without the LLM, gives the same tree."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from fake_openai_server import FakeOpenAI, decision, surface_reading_answers

from searchmgr.config import ConfigError
from searchmgr.managers import ManagerError
from searchmgr.managers.replay import Answer, ReplayManager, replay_config
from searchmgr.search import explore
from searchmgr.store import DecisionKind, TreeStore


def tree(run):
    with TreeStore(run / "tree.db") as store:
        return [(n.id, n.parent_id, n.depth, n.recipe, n.status.value, n.val_score, n.test_score, n.steps_trained,
                 n.source) for n in store.nodes(store.search()["id"])]


def llm_answers():
    """Manager requests: the surface reader; stopper requests: STOP every other time."""
    reader, counter, lock = surface_reading_answers(), itertools.count(), threading.Lock()

    def answer(body):
        if "early stopper" in body["messages"][0]["content"]:
            with lock:
                stop = next(counter) % 2 == 0
            return json.dumps({"verdict": "STOP" if stop else "CONTINUE", "reason": "scripted"})
        return reader(body)

    return answer


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "original"
    script = ["no JSON here", decision([{"knob": "lr", "op": "scale", "value": 30.0}]), {"status": 500}]
    with FakeOpenAI(script, default=llm_answers()) as srv:
        explore(["task=toy", "preset=smoke", "budget.steps=140", "eval_every=4", "seed=4", "manager.name=openai",
                 # the manager asked first, so the script's bad answers reach it (with the shipped start points
                 # the stopper's requests come first and take them: no rejection or error to replay)
                 "uct.start=bounded", "uct.hold_first=false",
                 f"manager.base_url={srv.base_url}", "manager.max_retries=0", "manager.backoff_s=0",
                 "stopper.name=llm", "stopper.every_evals=1", f"out={out}"])
    assert srv.requests
    return out


def test_replayed_run_gives_the_same_tree_without_the_llm(original, tmp_path):
    outcome = explore(["manager.name=replay", f"manager.replay={original}", f"out={tmp_path / 'again'}"])
    a, b = tree(original), tree(tmp_path / "again")
    assert len(a) == len(b) >= 6
    rename = {"openai": "replay", "llm": "replay"}
    for x, y in zip(a, b):
        assert x[:8] == y[:8], (x, y)  # ids, parents, recipes, status, scores, steps
        assert rename.get(x[8], x[8]) == y[8]
    with TreeStore(tmp_path / "again" / "tree.db") as store:
        sid = store.search()["id"]
        cfg = store.search()["config"]
        ds = store.decisions(sid, kind=DecisionKind.MANAGER)
    assert cfg["manager"]["name"] == "replay" and cfg["stopper"]["name"] == "replay" and cfg["seed"] == 4
    assert any(d.source == "replay" and d.applied for d in ds)
    assert outcome.best is not None


def test_original_trace_covers_rejections_errors_and_stops(original):
    with TreeStore(original / "tree.db") as store:
        sid = store.search()["id"]
        ds = store.decisions(sid)
    verdicts = {d.verdict for d in ds if d.kind is DecisionKind.MANAGER and d.source == "openai"}
    assert {"accepted", "rejected"} <= verdicts
    assert any(d.kind is DecisionKind.STOPPER for d in ds)


def test_replay_manager_answers_in_order_and_refuses_unknown_requests():
    from searchmgr.managers import ProposalContext
    from searchmgr.tasks import make_task
    from searchmgr.telemetry import summarize

    task = make_task("toy", {"preset": "smoke"})
    ctx = ProposalContext(task="toy", family=task.family, description=task.description, objective=task.objective,
                          surface=task.surface, parent_id=2, parent_recipe=task.base_recipe(), depth=2, max_depth=3,
                          start_step=20, end_step=40, telemetry=summarize([], task.objective), path=(), siblings=(),
                          budget_left_steps=100, seed=0)
    m = ReplayManager({(2, 0, 0): [Answer(7, "accepted", "first"), Answer(9, "error", "", reason="500")]})
    p = m.propose(ctx)
    assert p.raw == "first" and p.request["replayed"]["decision"] == 7
    with pytest.raises(ManagerError, match="replayed endpoint error"):
        m.propose(ctx)
    with pytest.raises(ManagerError, match="recorded no"):
        m.propose(ctx)


def test_replay_config_needs_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        replay_config({"manager": {"name": "replay", "replay": str(tmp_path)}})
    with pytest.raises(ConfigError, match="manager.replay"):
        explore(["task=toy", "manager.name=replay"])
