"""The example plug-ins in examples/: each keeps the task contract and runs a smoke search from its README command."""

import os

import pytest

from searchmgr.cli import main
from searchmgr.store import NodeStatus, TreeStore
from searchmgr.tasks import load_task
from searchmgr.tasks.testing import check_task

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("reference", ["digits_task.py:DigitsTask", "hf_gpt2_task.py:TinyGPT2Stories"])
def test_example_keeps_the_contract(reference):
    check_task(load_task(os.path.join(EXAMPLES, reference), {"preset": "smoke"}))


def test_digits_example_searches_from_its_readme_command(tmp_path):
    # (the GPT-2 example's command runs in tests/test_hf_trainer_task.py, killed and resumed)
    ref = os.path.join(EXAMPLES, "digits_task.py:DigitsTask")
    run = tmp_path / "run"
    assert main(["explore", f"task={ref}", "preset=smoke", f"out={run}", "budget.steps=40"]) == 0
    with TreeStore(run / "tree.db") as store:
        nodes = store.nodes(1)
    assert max(n.depth for n in nodes if n.status is NodeStatus.DONE) == 2
