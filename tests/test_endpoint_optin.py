"""Opt-in: a short search against a real OpenAI-compatible endpoint (never in CI unless configured).

    SEARCHMGR_TEST_BASE_URL=http://127.0.0.1:8080/v1 .venv/bin/pytest -m endpoint -s tests/test_endpoint_optin.py

Optional: SEARCHMGR_TEST_MODEL (default "local"), SEARCHMGR_TEST_TASKS (default "toy"; comma-separated,
e.g. "toy,tinystories_overfit"), SEARCHMGR_TEST_STEPS (step budget; default: the smoke
preset's). The API key, if the server needs one, comes from OPENAI_API_KEY. Prints how many proposals were valid,
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
                       f"manager.base_url={URL}", f"manager.model={os.environ.get('SEARCHMGR_TEST_MODEL', 'local')}",
                       "manager.timeout_s=300", "manager.max_retries=1", f"out={out}"])
    check_trained(out, seen)
    with TreeStore(out / "tree.db") as store:
        stats = manager_stats(store, store.search()["id"], "openai")
    print(f"\n{task}: {outcome.stop_reason}; openai manager: " + json.dumps(stats, indent=1))
    assert stats["requests"] >= 1
    assert stats["verdicts"].get("error", 0) < stats["requests"], "the endpoint never answered"
