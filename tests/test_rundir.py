"""One owner per run (lock), atomic creation, read-only readers, and out= checks."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from searchmgr.cli import main
from searchmgr.config import ConfigError
from searchmgr.rundir import LOCK_NAME, RunDirError, RunLock, RunLocked, claim_run, create_run, open_run
from searchmgr.search import explore, resume_run
from searchmgr.store import CorruptStore, NodeStatus, StoreError

SMOKE = ["task=toy", "preset=smoke", "width=16"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rundir") / "run"
    explore(SMOKE + ["budget.steps=80", f"out={out}"])
    return out


def test_second_owner_is_refused_at_once_naming_the_holder(small_run):
    with claim_run(small_run):
        t0 = time.perf_counter()
        with pytest.raises(RunLocked, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
            resume_run(small_run)
        assert time.perf_counter() - t0 < 5  # refused at once, not after waiting
        assert main(["show", str(small_run)]) == 0  # readers need no lock
        with open_run(small_run) as store:
            assert store.nodes(store.search()["id"])
    with claim_run(small_run):  # released: free again
        pass


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    pid = os.fork()  # a process that takes the lock and dies without releasing it
    if pid == 0:
        RunLock.acquire(tmp_path)
        os._exit(9)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    dead = json.loads((tmp_path / LOCK_NAME).read_text())
    lock = RunLock.acquire(tmp_path)  # the kernel dropped the dead holder's flock
    assert lock.previous is not None and lock.previous.pid == dead["pid"] != os.getpid()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert (tmp_path / LOCK_NAME).read_text() == ""  # a clean release leaves nothing to take over
    again = RunLock.acquire(tmp_path)
    assert again.previous is None
    again.release()


def test_concurrent_resume_of_a_live_explore_is_refused(tmp_path):
    """Before the lock, a resume during a live explore marked its running node interrupted and trained it too."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "searchmgr", "explore", *SMOKE, "step_delay_s=0.02",
                             "budget.steps=200", f"out={run}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            text = (run / LOCK_NAME).read_text() if (run / LOCK_NAME).exists() else ""
            if text and json.loads(text)["pid"] == proc.pid:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        with pytest.raises(RunLocked, match=f"pid {proc.pid} on host"):
            explore([], resume=run)
        assert main(["explore", "--resume", str(run)]) == 2
        with open_run(run) as store:  # the live run is untouched: nothing was marked interrupted
            assert not any(e["kind"] == "interrupted" for e in store.events(store.search()["id"]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        search = resume_run(run)  # the dead explore's lock is taken over
        try:
            with open_run(run) as store:
                events = store.events(store.search()["id"])
            resumed = json.loads([e for e in events if e["kind"] == "resumed"][-1]["data"])
            assert str(proc.pid) in resumed["took_over_from"] and resumed["pid"] == os.getpid()
        finally:
            search.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_creation_is_atomic_when_it_fails(tmp_path):
    run = tmp_path / "run"

    def build(stage, store):
        store.create_search("toy", {}, [], "x", {})
        (stage / "checkpoints").mkdir()
        raise ValueError("the task could not build its root")

    with pytest.raises(ValueError, match="could not build"):
        create_run(run, build)
    assert not run.exists() and list(tmp_path.iterdir()) == []  # no half-made run, no leftover
    explore(SMOKE + ["budget.steps=60", f"out={run}"])  # the same out= works afterwards
    assert (run / "tree.db").exists()


def test_bad_data_file_leaves_no_run_and_names_the_fix(tmp_path, capsys):
    data = tmp_path / "binary.txt"
    data.write_bytes(bytes(range(256)) * 8)
    run = tmp_path / "run"
    assert main(["explore", "task=tinystories_overfit", "preset=smoke", f"data={data}", f"out={run}"]) == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "fix its options" in err
    assert not run.exists() and not list(tmp_path.glob(".run.partial-*"))


@pytest.mark.parametrize("make, out, needle", [
    (lambda p: (p / "f").write_text("x"), "f", "is an existing file"),
    (lambda p: (p / "f").write_text("x"), "f/sub", "lies under"),
    (lambda p: None, "n" * 300, "is too long"),
    (lambda p: (p / "d").mkdir() or (p / "d" / "x").write_text("x"), "d", "exists and is not empty"),
    (lambda p: None, "/", "file-system root"),
])
def test_unusable_out_is_refused_before_training(tmp_path, make, out, needle):
    make(tmp_path)
    target = out if out == "/" else str(tmp_path / out)
    with pytest.raises(RunDirError, match=needle):
        explore(SMOKE + [f"out={target}"])


def test_empty_out_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="out= is empty"):
        explore(SMOKE + ["out="])


def test_readers_never_write(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tree.db").write_bytes(b"")
    assert main(["show", str(run)]) == 2  # was silently turned into an empty store
    assert "is empty (0 bytes)" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["tree.db"]  # nothing written, no lock taken
    for command in (["explore", "--resume", str(run)], ["repair", str(run)]):  # writers refuse it too
        assert main(command) == 2 and "is empty (0 bytes)" in capsys.readouterr().err
    assert (run / "tree.db").stat().st_size == 0
    with pytest.raises(CorruptStore):
        open_run(run)


def test_read_only_store_refuses_writes(small_run):
    with open_run(small_run) as store:
        with pytest.raises(StoreError, match="read-only"):
            store.add_event(1, "x", "y")
        assert all(n.status is NodeStatus.DONE or n.status.finished for n in store.nodes(1))
