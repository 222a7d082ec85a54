"""The plain PyTorch example plug-in keeps the task contract and runs a smoke search from its README command."""

import os

from searchmgr.cli import main
from searchmgr.store import NodeStatus, TreeStore
from searchmgr.tasks import load_task
from searchmgr.tasks.testing import check_task

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_digits_example_keeps_the_contract_and_searches_from_its_readme_command(tmp_path):
    # (the GPT-2 example: tests/test_hf_trainer_task.py checks it and runs its command, killed and resumed)
    ref = os.path.join(EXAMPLES, "digits_task.py:DigitsTask")
    check_task(load_task(ref, {"preset": "smoke"}))
    run = tmp_path / "run"
    assert main(["explore", f"task={ref}", "preset=smoke", f"out={run}", "budget.steps=40"]) == 0
    with TreeStore(run / "tree.db") as store:
        nodes = store.nodes(1)
    assert max(n.depth for n in nodes if n.status is NodeStatus.DONE) == 2
