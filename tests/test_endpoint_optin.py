"""Opt-in: a short search against a real OpenAI-compatible endpoint (never in CI unless configured).

    SEARCHMGR_TEST_BASE_URL=http://127.0.0.1:8080/v1 .venv/bin/pytest -m endpoint -s tests/test_endpoint_optin.py

Optional: SEARCHMGR_TEST_MODEL (default "local"), SEARCHMGR_TEST_TASKS (default "toy"; comma-separated,
e.g. "toy,tinystories_overfit"), SEARCHMGR_TEST_STEPS (step budget; default: the smoke
preset's), SEARCHMGR_TEST_SCHEMA (`request`, the default, or `generic`: the response schema sent).
A short supervised run (`searchmgr supervise`) asks the same endpoint in the background. The API key, if the server needs one, comes from OPENAI_API_KEY. Prints how many proposals were valid,
how many were rejected and why, and the latency per decision.
"""

from __future__ import annotations

import json
import os

import pytest
from fake_openai_server import check_trained

from searchmgr.search import explore
from searchmgr.store import TreeStore
from searchmgr.tasks import make_task
from searchmgr.tasks.base import Task
from searchmgr.traces import manager_stats

URL = os.environ.get("SEARCHMGR_TEST_BASE_URL")
TASKS = [t.strip() for t in os.environ.get("SEARCHMGR_TEST_TASKS", "toy").split(",") if t.strip()]
SCHEMA = os.environ.get("SEARCHMGR_TEST_SCHEMA", "request")
MODEL = os.environ.get("SEARCHMGR_TEST_MODEL", "local")

pytestmark = [
    pytest.mark.endpoint,
    pytest.mark.skipif(not URL, reason="needs a real endpoint: set SEARCHMGR_TEST_BASE_URL=http://HOST:PORT/v1 "
                       "(any OpenAI-compatible server, e.g. `python -m llama_cpp.server --model M.gguf`) and run "
                       "`pytest -m endpoint -s tests/test_endpoint_optin.py`"),
]


@pytest.mark.timeout(3600)  # a small local model on a CPU takes seconds to minutes per answer
@pytest.mark.parametrize("task", TASKS)
def test_short_search_against_the_endpoint(task, tmp_path, monkeypatch):
    seen: list[dict] = []
    cls = type(make_task(task, {"preset": "smoke"}))
    original = cls.train_segment

    def spy(self: Task, checkpoint, recipe, segment, on_eval):
        seen.append(dict(recipe))
        return original(self, checkpoint, recipe, segment, on_eval)

    monkeypatch.setattr(cls, "train_segment", spy)
    d = make_task(task, {"preset": "smoke"}).search_defaults()
    steps = int(os.environ.get("SEARCHMGR_TEST_STEPS", d.budget_steps))
    out = tmp_path / task
    outcome = explore([f"task={task}", "preset=smoke", f"budget.steps={steps}", "manager.name=openai",
                       f"manager.base_url={URL}", f"manager.model={MODEL}", f"manager.response_schema={SCHEMA}",
                       "manager.timeout_s=300", "manager.max_retries=1", f"out={out}"])
    check_trained(out, seen)
    with TreeStore(out / "tree.db") as store:
        stats = manager_stats(store, store.search()["id"], "openai")
    print(f"\n{task}: {outcome.stop_reason}; openai manager: " + json.dumps(stats, indent=1))
    assert stats["requests"] >= 1
    assert stats["verdicts"].get("error", 0) < stats["requests"], "the endpoint never answered"


@pytest.mark.timeout(3600)
def test_supervised_run_against_the_endpoint(tmp_path):
    from searchmgr.store import DecisionKind
    from searchmgr.supervise import supervise

    out = tmp_path / "supervised"
    outcome = supervise(["task=toy", "step_delay_s=0.02", "interval=20", "stale_steps=1000", "manager.name=openai",
                         f"manager.base_url={URL}", f"manager.model={MODEL}", f"manager.response_schema={SCHEMA}",
                         "manager.timeout_s=300", "manager.max_retries=1", f"out={out}"])
    with TreeStore(out / "tree.db") as store:
        decisions = store.decisions(store.search()["id"], kind=DecisionKind.MANAGER)
    print(f"\nsupervised toy: {outcome.verdicts}, {outcome.applied} applied; latency "
          f"{[round(d.latency_s, 2) for d in decisions if d.latency_s is not None]}")
    assert decisions and all(d.snapshot_step is not None for d in decisions)
    assert outcome.final.end_step == 400 and outcome.applied == len(outcome.chain) - 1
