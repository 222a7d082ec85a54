"""searchmgr compare at smoke size: every method, equal budgets, resume, bad inputs."""

import json

import pytest

from searchmgr.cli import main
from searchmgr.compare import compare
from searchmgr.config import ConfigError
from searchmgr.schedule import export_schedule
from searchmgr.store import TreeStore

SMOKE = ["task=toy", "preset=smoke", "threads=1"]
HORIZON = 60  # toy smoke: 3 segments of 20 steps


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "c"
    result = compare(SMOKE + ["seeds=1", "methods=tree,tree:random,grid,random,tpe,pbt", f"out={out}"],
                     say=lambda *_: None)
    return out, result


def test_every_method_runs_within_budget_and_leaves_at_most_one_horizon(one_seed):
    out, result = one_seed
    assert list(result["methods"]) == ["tree", "tree:random", "grid", "random", "tpe", "pbt"]
    assert result["objective"] == {"metric": "val/loss", "direction": "minimize", "test_metric": "test/loss"}
    for key, entry in result["methods"].items():
        (row,) = entry["seeds"]
        assert row["seed"] == 0 and row["complete"], key
        assert result["budget_steps"] - HORIZON < row["steps_used"] <= result["budget_steps"], key
        assert row["best_val"] == entry["best_val"]["mean"] and row["test"] is not None
        with TreeStore(f"{row['run']}/tree.db") as store:
            nodes = store.nodes(store.search()["id"])
            sources = {n.source for n in nodes if n.depth > 0}
        policy = {"fixed", "start", "hold"}  # the tree's own children: fixed path, start points, holds
        expected = {"tree": policy | {"model"}, "tree:random": policy | {"random"}}.get(key, {key})
        assert sources <= expected and sources & expected - {"fixed"}, (key, sources)
        schedule = export_schedule(row["run"])  # an ordinary run: its best schedule exports
        assert schedule.val_score == pytest.approx(row["best_val"])
    saved = json.loads((out / "compare.json").read_text())
    assert saved["methods"]["tpe"]["seeds"][0]["run"].endswith("tpe/seed0")
    md = (out / "compare.md").read_text()
    assert "| tree:random |" in md and "± " in md
    assert (out / "compare.png").stat().st_size > 10_000


def test_constant_baselines_hold_one_recipe_per_chain(one_seed):
    out, result = one_seed
    for key in ("grid", "random", "tpe"):
        with TreeStore(f"{result['methods'][key]['seeds'][0]['run']}/tree.db") as store:
            nodes = store.nodes(store.search()["id"])
        index = {n.id: n for n in nodes}
        for n in nodes:
            if n.depth > 1:
                assert n.recipe == index[n.parent_id].recipe, key


def test_resume_adds_seeds_and_methods_without_rerunning(one_seed, tmp_path):
    out, _ = one_seed
    before = json.loads((out / "compare.json").read_text())
    said = []
    result = compare(["seeds=2", "methods=random"], resume=out, say=said.append)
    assert sum(1 for s in said if s.startswith("[")) == 6  # seed 1 of each of the six methods, nothing else
    assert said[-2] == (out / "compare.md").read_text().rstrip()  # the table is printed, not only written
    for key, entry in result["methods"].items():
        assert [r["seed"] for r in entry["seeds"]] == [0, 1]
        assert entry["seeds"][0] == before["methods"][key]["seeds"][0]


def test_a_comparison_killed_in_its_first_run_resumes(tmp_path):
    out = tmp_path / "c"

    def killed(line):
        if line.startswith("[1/"):
            raise KeyboardInterrupt  # Ctrl-C as the first run starts: nothing of it has finished

    with pytest.raises(KeyboardInterrupt):
        compare(SMOKE + ["seeds=1", "methods=grid", f"out={out}"], say=killed)
    result = compare([], resume=out, say=lambda *_: None)
    assert [r["seed"] for r in result["methods"]["grid"]["seeds"]] == [0]


def test_a_corrupt_comparison_file_gets_a_clear_error(tmp_path):
    (tmp_path / "compare.json").write_text('{"task": "toy", "meth')
    with pytest.raises(ConfigError, match="is not a comparison.*move that file aside"):
        compare([], resume=tmp_path, say=lambda *_: None)


@pytest.mark.parametrize("words, message", [
    (["methods=tree,bogus"], "unknown method 'bogus'"),
    (["methods=tree:nobody"], "unknown manager 'nobody'"),
    (["seeds=0"], "at least one seed"),
    (["seeds=two"], "not a whole number"),
    (["budget.steps=50"], "cannot pay for the fixed baseline"),
    (["grid.momentum=0.9"], "not knobs of task toy"),
    (["grid.lr=fast"], "comma-separated numbers"),
    (["methods=pbt", "budget.steps=100"], "pbt needs a population of 2"),
])
def test_bad_inputs_fail_before_any_training(tmp_path, words, message):
    with pytest.raises(ConfigError, match=message):
        compare(SMOKE + words + [f"out={tmp_path / 'c'}"], say=lambda *_: None)
    assert not (tmp_path / "c").exists()


def test_cli_reports_a_bad_method_with_exit_code_2(tmp_path, capsys):
    assert main(["compare", "task=toy", "methods=hyperopt", f"out={tmp_path / 'c'}"]) == 2
    assert "unknown method 'hyperopt'" in capsys.readouterr().err
