"""Plug-in tasks: references, entry points, provenance, resume, and every kind of bad plug-in."""

import sqlite3
from pathlib import Path

import pytest

from searchmgr.cli import main
from searchmgr.config import ConfigError
from searchmgr.search import explore
from searchmgr.store import NodeStatus, TreeStore
from searchmgr.tasks import load_task, make_task
from searchmgr.tasks.contract import TaskContractError
from searchmgr.tasks.testing import TaskCheckFailed, check_task
from tests.tasks.plugin_template import plugin_source

FAST = ["budget.steps=60", "stopper.name=none"]


def write_plugin(tmp_path, name="line_task.py", **changes):
    path = tmp_path / name
    path.write_text(plugin_source(**changes))
    return path


def test_file_plugin_runs_and_records_its_provenance(tmp_path):
    path = write_plugin(tmp_path)
    outcome = explore([f"task={path}:LineTask", f"out={tmp_path / 'run'}", *FAST])
    assert outcome.best is not None and outcome.fixed is not None
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        row = store.search()
    source = row["info"]["task_source"]
    assert row["task"] == row["config"]["task"] == f"{path.resolve()}:LineTask"
    assert source["kind"] == "file" and source["path"] == str(path.resolve())
    import hashlib

    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row["info"]["objective"]["metric"] == "val/loss"


@pytest.mark.parametrize("attr", ["LineTask", "line", "make_line"])
def test_attr_may_be_a_class_an_instance_or_a_factory(tmp_path, attr):
    task = load_task(f"{write_plugin(tmp_path)}:{attr}")
    assert task.name == "line" and task.base_recipe() == {"lr": 0.01, "noise": 0.0}


def test_module_reference_and_entry_point_of_another_package(tmp_path, monkeypatch):
    write_plugin(tmp_path, "line_plugin_mod.py")
    dist = tmp_path / "lineplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lineplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[searchmgr.tasks]\nline = line_plugin_mod:LineTask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert make_task("line_plugin_mod:LineTask").name == "line"
    task = load_task("line")
    assert task.source.kind.value == "entry_point" and task.source.module == "line_plugin_mod"
    assert main(["tasks"]) == 0  # the plug-in is listed with the built-ins
    from searchmgr.tasks import available

    assert {"line", "toy", "grpo_arith"} <= set(available())


def test_explore_takes_an_instance_and_resume_reimports_its_class(tmp_path):
    from searchmgr.tasks.toy import ToyTask

    run = tmp_path / "run"
    explore([f"out={run}", "budget.steps=60", "stopper.name=none"], task=ToyTask(ToyTask.Options(preset="smoke")))
    outcome = explore(["budget.steps=120"], resume=run)  # no instance: resume imports searchmgr.tasks.toy:ToyTask
    assert outcome.steps_used == 120
    with TreeStore(run / "tree.db") as store:
        row = store.search()
    assert row["task"] == "searchmgr.tasks.toy:ToyTask" and row["info"]["task_source"]["kind"] == "instance"


def test_file_plugin_through_resume_show_export_report_replay_compare(tmp_path, capsys):
    path = write_plugin(tmp_path)
    run = tmp_path / "run"
    assert main(["explore", f"task={path}:LineTask", f"out={run}", "budget.steps=40", "stopper.name=none"]) == 0
    assert main(["explore", "--resume", str(run), "budget.steps=60"]) == 0
    assert main(["show", str(run)]) == 0
    assert main(["export", str(run), "-o", str(tmp_path / "s.json")]) == 0
    assert main(["report", str(run)]) == 0
    assert main(["replay", str(tmp_path / "s.json")]) == 0
    assert main(["compare", f"task={path}:LineTask", "seeds=1", "methods=tree,random", "budget.steps=40",
                 f"out={tmp_path / 'cmp'}"]) == 0
    out = capsys.readouterr().out
    assert "task_source" in out and "wrote" in out and (run / "report" / "report.html").exists()
    assert (tmp_path / "cmp" / "compare.json").exists() and (tmp_path / "cmp" / "random" / "seed0" / "tree.db").exists()


def test_a_plugin_run_without_out_is_named_after_the_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = explore([f"task={write_plugin(tmp_path)}:LineTask", "budget.steps=20", "stopper.name=none"])
    assert outcome.run_dir.parent == Path("runs") and outcome.run_dir.name.startswith("line-")


def test_check_task_passes_for_good_tasks(tmp_path):
    check_task(load_task(f"{write_plugin(tmp_path)}:LineTask"))
    check_task(make_task("toy", {"preset": "smoke"}))


def test_check_task_catches_a_task_that_does_not_resume_exactly(tmp_path):
    # the model is not loaded from the checkpoint: two segments differ from one long one
    path = write_plugin(tmp_path)
    path.write_text(path.read_text().replace('model.load_state_dict(checkpoint["model"])', 'pass'))
    with pytest.raises(TaskCheckFailed, match="do not end like one of 10"):
        check_task(load_task(f"{path}:LineTask"))


# -- bad plug-ins: fail before anything is written ----------------------------------------
BEFORE = [
    ("missing file", lambda p: f"{p.parent / 'nope.py'}:LineTask", "nope.py does not exist"),
    ("missing module", lambda p: "no_such_module_xyz:LineTask", "no module named 'no_such_module_xyz'"),
    ("missing attribute", lambda p: f"{p}:Nope", r"has no attribute 'Nope'; its tasks are \['LineTask', 'line'\]"),
    ("not a task", lambda p: f"{p}:not_a_task", "is a dict, not a Task subclass"),
    ("not a task class", lambda p: "torch.nn:Linear", "the class Linear, not a subclass of searchmgr.tasks.Task"),
]


@pytest.mark.parametrize("case,ref,message", BEFORE, ids=[c[0] for c in BEFORE])
def test_bad_reference_fails_before_the_run_dir_exists(tmp_path, case, ref, message):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        explore([f"task={ref(write_plugin(tmp_path))}", f"out={run}"])
    assert not run.exists()


DECLARED = [
    ("bounds reversed", {"LR_LOW": "0.3", "LR_HIGH": "1e-3"}, r"knob lr: low \(0.3\) must be below high.*swap"),
    ("base recipe out of bounds", {"BASE_LR": "0.9"}, r"base recipe does not fit.*lr=0.9 is outside"),
]


@pytest.mark.parametrize("case,changes,message", DECLARED, ids=[c[0] for c in DECLARED])
def test_bad_declarations_fail_before_the_run_dir_exists(tmp_path, case, changes, message, capsys):
    run = tmp_path / "run"
    path = write_plugin(tmp_path, **changes)
    assert main(["explore", f"task={path}:LineTask", f"out={run}"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(ConfigError, match=message):
        explore([f"task={path}:LineTask", f"out={run}"])
    assert not run.exists()


# -- bad plug-ins: fail at the first segment, the run left consistent ---------------------
TRAINING = [
    ("metrics without a namespace", {"VAL_KEY": '"val_loss"'}, r"without a namespace at step 5: \['val_loss'\]"),
    ("no test metric", {"TEST": "False"}, r"the final metrics lack \['test/loss'\]"),
    ("wrong number of steps", {"STEP_ERROR": "1"}, r"steps_done=11 steps in a segment of 10"),
]


@pytest.mark.parametrize("case,changes,message", TRAINING, ids=[c[0] for c in TRAINING])
def test_contract_breach_stops_at_the_first_segment(tmp_path, case, changes, message):
    run = tmp_path / "run"
    with pytest.raises(TaskContractError, match=message):
        explore([f"task={write_plugin(tmp_path, **changes)}:LineTask", f"out={run}"])
    with TreeStore(run / "tree.db") as store:
        nodes = store.nodes(1)
        assert [n.status for n in nodes] == [NodeStatus.DONE, NodeStatus.FAILED]  # the root, the first segment
        assert message.split(r"\[")[0].replace("\\", "") in nodes[1].error or nodes[1].error
        referenced = {n.checkpoint for n in nodes if n.checkpoint}
    on_disk = {f"checkpoints/{p.name}" for p in (run / "checkpoints").iterdir()}
    assert on_disk == referenced == {"checkpoints/node_00001.pt"}  # no stray or partial checkpoint
    con = sqlite3.connect(run / "tree.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_resume_reimports_the_file_and_names_it_when_it_is_gone(tmp_path):
    path = write_plugin(tmp_path)
    run = tmp_path / "run"
    explore([f"task={path}:LineTask", f"out={run}", "budget.steps=20", "stopper.name=none"])
    path.write_text(path.read_text() + "\n# edited\n")
    explore(["budget.steps=40"], resume=run)
    with TreeStore(run / "tree.db") as store:
        resumed = [e for e in store.events(1) if e["kind"] == "resumed"][-1]
    assert resumed["message"].startswith("the task's file changed since the run was created")
    path.unlink()
    with pytest.raises(ConfigError, match=f"task file {path.resolve()} does not exist"):
        explore(["budget.steps=60"], resume=run)


def test_a_task_that_skips_super_init_is_named(tmp_path):
    path = write_plugin(tmp_path)
    path.write_text(path.read_text() + "\n\nclass NoInit(LineTask):\n    def __init__(self, options=None):\n        pass\n")
    with pytest.raises(ConfigError, match=r"call super\(\).__init__\(options\)"):
        explore([f"task={path}:NoInit", f"out={tmp_path / 'run'}"])


def test_workers_rebuild_checked_tasks_and_report_a_breach(tmp_path):
    # process and ray workers rebuild the task from its TaskSpec and run it through run_job
    from searchmgr.executors import Job, TaskSpec
    from searchmgr.executors.base import run_job
    from searchmgr.store import save_checkpoint
    from searchmgr.tasks.base import Segment

    spec = TaskSpec(f"{write_plugin(tmp_path, TEST='False')}:LineTask", {})
    task = spec.build()
    root = tmp_path / "root.pt"
    sha = save_checkpoint(task.init(0), root)
    job = Job(2, spec, task.base_recipe(), Segment(0, 10, 20, 5), root, sha, tmp_path / "node.pt")
    trained = run_job(job, task, lambda step, metrics: False)
    assert trained.broke_contract and "the final metrics lack ['test/loss']" in trained.error


def test_an_instance_trains_inline_only(tmp_path):
    from searchmgr.tasks.toy import ToyTask

    with pytest.raises(ConfigError, match="executor.name=inline"):
        explore([f"out={tmp_path / 'run'}", "executor.name=process"], task=ToyTask())
    assert not (tmp_path / "run").exists()


def test_the_names_plugins_import_stay_where_they_are():
    from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale  # noqa: F401
    from searchmgr.tasks import (  # noqa: F401
        Direction, Family, Objective, SearchDefaults, Segment, SegmentResult, Task,
    )
    from searchmgr.tasks.testing import check_task  # noqa: F401
