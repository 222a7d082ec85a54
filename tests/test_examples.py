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


def test_cartpole_ppo_example_keeps_the_contract_and_runs_explore_and_compare(tmp_path, capsys):
    ref = os.path.join(EXAMPLES, "cartpole_ppo.py:CartPolePPO")
    found = check_task(load_task(ref, {"preset": "smoke"}))  # resumes exactly, every knob acts
    assert {k.knob for k in found["knobs"]} == {"lr", "ent_coef", "clip_coef"}
    run = tmp_path / "run"
    assert main(["explore", f"task={ref}", "preset=smoke", f"out={run}", "budget.steps=8", "threads=1"]) == 0
    with TreeStore(run / "tree.db") as store:
        nodes = store.nodes(1)
        info = store.search()["info"]
    assert max(n.depth for n in nodes if n.status is NodeStatus.DONE) == 2
    assert info["step_unit"] == "one PPO iteration"
    cmp = tmp_path / "cmp"
    assert main(["compare", f"task={ref}", "preset=smoke", "methods=tree,random", "seeds=1", "budget.steps=8",
                 "threads=1", f"out={cmp}"]) == 0
    assert (cmp / "compare.json").exists() and (cmp / "random" / "seed0" / "tree.db").exists()
