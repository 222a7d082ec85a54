"""A full disk is reported as a full disk, with what to free, and the run resumes once space is freed."""

import errno
import os
import sqlite3

from searchmgr.cli import main
from searchmgr.search import explore
from searchmgr.store import NodeStatus, RunState, TreeStore
from searchmgr.store import checkpoints

SMOKE = ["task=toy", "preset=smoke", "threads=1"]


def fill_disk_after(monkeypatch, calls):
    """The ``calls``-th checkpoint written, and every one after it, meets a full disk (its temp file exists)."""
    seen = []

    def full(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        seen.append(path)
        if len(seen) >= calls:
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return f

    monkeypatch.setattr(checkpoints, "open", full, raising=False)


def state_and_nodes(run):
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        return s.run_state(sid)[0], s.nodes(sid)


def test_a_checkpoint_that_cannot_be_written_stops_the_search_resumably(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    fill_disk_after(monkeypatch, 3)  # the root's checkpoint, the first segment's, then the second's
    assert main(["explore", *SMOKE, f"out={run}", "budget.steps=120"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the disk holding" in err and "free space there" in err and "--resume" in err
    assert "damaged" not in err
    assert not list((run / "checkpoints").glob("*.tmp"))  # no half-written file left behind
    state, nodes = state_and_nodes(run)
    assert state is RunState.FAILED and not [n for n in nodes if n.status is NodeStatus.RUNNING]
    assert [n for n in nodes if n.status is NodeStatus.INTERRUPTED]  # not failed: retrained after the resume
    assert not [n for n in nodes if n.status is NodeStatus.FAILED]
    monkeypatch.undo()  # space freed
    explore(["budget.steps=120"], resume=run)
    state, nodes = state_and_nodes(run)
    assert state is RunState.FINISHED and all(n.status is NodeStatus.DONE for n in nodes)


def test_a_full_store_is_not_called_damaged(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    explore([*SMOKE, f"out={run}", "budget.steps=60"])

    def full(self, *args, **kwargs):  # SQLite's answer when the disk is full, inside the store's transaction
        with self.atomic():
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(TreeStore, "add_metrics", full)
    assert main(["explore", "--resume", str(run), "budget.steps=120", "budget.nodes=6"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the disk holding" in err and "writing tree.db" in err and "damaged" not in err, err
    monkeypatch.undo()
    state, nodes = state_and_nodes(run)
    assert state is RunState.FAILED and [n for n in nodes if n.status is NodeStatus.INTERRUPTED]
    assert not [n for n in nodes if n.status is NodeStatus.FAILED]
    explore(["budget.steps=120"], resume=run)  # space freed: it goes on
    assert state_and_nodes(run)[0] is RunState.FINISHED


def test_a_creation_without_space_names_the_run_not_its_hidden_directory(tmp_path, monkeypatch, capsys):
    fill_disk_after(monkeypatch, 1)
    assert main(["explore", *SMOKE, f"out={tmp_path / 'new'}"]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "creating the run" in err and ".partial-" not in err
    assert os.listdir(tmp_path) == []  # nothing half-made
