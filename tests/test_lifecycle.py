"""Run state as data: the owner writes it, readers check it against the owner lock; signals stop cleanly."""

import os
import signal
import subprocess
import sys
import time

from fastapi.testclient import TestClient

from searchmgr.lifecycle import RunStatus, read_run
from searchmgr.rundir import RunLock, owner_of
from searchmgr.search import explore
from searchmgr.serve.app import create_app
from searchmgr.serve.runs import name_runs
from searchmgr.store import CommandKind, CommandStatus, EventKind, NodeStatus, RunState, TreeStore

SLOW = ["task=toy", "preset=smoke", "threads=1", "step_delay_s=0.05", "budget.steps=400"]


def start(*words, resume=None):
    cmd = [sys.executable, "-m", "searchmgr", "explore", *words] + (["--resume", str(resume)] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(check, timeout=120.0, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {check}")


def stored(run):
    """(state, nodes) as the store has them (read-only, as readers open it)."""
    if not (run / "tree.db").exists():
        return None
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        return s.run_state(sid)[0], s.nodes(sid)


def training(run):
    got = stored(run)
    return got is not None and got[0] is RunState.RUNNING and any(
        n.status is NodeStatus.RUNNING and n.depth > 0 for n in got[1])


def test_killed_search_reads_as_interrupted_in_the_service(tmp_path):
    run = tmp_path / "r"
    proc = start(*SLOW, f"out={run}")
    try:
        wait_for(lambda: training(run))
        client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
        live = client.get("/api/runs").json()["runs"][0]
        assert live["status"] == "running" and {"pause", "stop"} <= set(live["accepts"])
        rev = client.get("/api/runs/r/tree").json()["revision"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        dead = wait_for(lambda: (r := client.get("/api/runs").json()["runs"][0])["status"] == "interrupted" and r,
                        timeout=2.0, poll=0.05)
        assert time.monotonic() - killed < 2.0
        assert "pause" not in dead["accepts"] and "stop" not in dead["accepts"]
        assert f"explore --resume {run}" in dead["hint"]
        # the nodes it left running read as interrupted, also in an incremental fetch
        tree = client.get(f"/api/runs/r/tree?after={rev}").json()
        assert tree["nodes"] and all(n["status"] == "interrupted" for n in tree["nodes"] if n["status"] != "done")
        assert all(n["status"] != "running" for n in client.get("/api/runs/r/tree").json()["nodes"])
        refused = client.post("/api/runs/r/pause", json={})
        assert refused.status_code == 409 and "interrupted" in refused.json()["detail"]
        assert f"explore --resume {run}" in refused.json()["detail"]
        with TreeStore.read_only(run / "tree.db") as s:  # nothing was queued for the dead run
            assert s.commands(s.search()["id"]) == []
    finally:
        proc.kill()


def test_sigterm_stops_cleanly_and_resume_continues(tmp_path):
    run = tmp_path / "r"
    proc = start(*SLOW, f"out={run}")
    wait_for(lambda: training(run))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert f"explore --resume {run}" in out
    state, nodes = stored(run)
    assert state is RunState.STOPPED
    assert not [n for n in nodes if n.status is NodeStatus.RUNNING]
    interrupted = [n for n in nodes if n.status is NodeStatus.INTERRUPTED]
    assert interrupted  # the segment in training stopped at its next evaluation
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        assert s.run_state(sid)[1] == "stopped by SIGTERM"
        kinds = [e["kind"] for e in s.events(sid)]
        assert EventKind.NODE_INTERRUPTED.value in kinds and kinds[-1] == EventKind.STOPPED.value
        assert read_run(s, sid, run).status is RunStatus.STOPPED
    resumed = start("budget.steps=200", resume=run)  # less than spent: only the interrupted node is owed
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    state, nodes = stored(run)
    assert state is RunState.FINISHED
    assert all(n.status.finished for n in nodes if n.id in {i.id for i in interrupted})


def test_sigterm_terminates_process_workers(tmp_path):
    run = tmp_path / "r"
    proc = start(*SLOW, "executor.name=process", "executor.workers=2", f"out={run}")
    wait_for(lambda: training(run), timeout=240)
    workers = wait_for(lambda: subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    def gone(pid):
        try:
            return open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        except FileNotFoundError:
            return True

    wait_for(lambda: all(gone(pid) for pid in workers), timeout=15)  # none left training on its own
    state, nodes = stored(run)
    assert state is RunState.STOPPED and not [n for n in nodes if n.status is NodeStatus.RUNNING]


def test_process_workers_of_a_killed_search_exit(tmp_path):
    run = tmp_path / "r"
    proc = start(*SLOW, "executor.name=process", "executor.workers=2", f"out={run}")
    wait_for(lambda: training(run), timeout=240)
    workers = wait_for(lambda: subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split())
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def gone(pid):
        try:
            return open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        except FileNotFoundError:
            return True

    wait_for(lambda: all(gone(pid) for pid in workers), timeout=30)  # none left training for nobody


def test_owner_lock_decides_liveness(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=60"])
    assert owner_of(run) is None
    with TreeStore(run / "tree.db") as s:
        sid = s.search()["id"]
        assert s.run_state(sid)[0] is RunState.FINISHED
        s.set_run_state(sid, RunState.PAUSED, "paused by command 1")
        assert read_run(s, sid, run).status is RunStatus.INTERRUPTED  # nobody holds the lock
        lock = RunLock.acquire(run)
        try:
            view = read_run(s, sid, run)
            assert view.status is RunStatus.PAUSED and view.owner.pid == os.getpid()
            assert view.refusal(CommandKind.RESUME) is None and "paused" in view.refusal(CommandKind.PAUSE)
            assert owner_of(run) is not None
        finally:
            lock.release()
        assert owner_of(run) is None


def test_stop_makes_queued_commands_moot_and_asked_ahead_nodes_wait(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=60"])
    with TreeStore.read_only(run / "tree.db") as s:
        finished_before = sum(n.status.finished for n in s.nodes(s.search()["id"]) if n.depth)

    class StopOnStart:
        """Queues a stop and a pause behind it when the first segment starts (as a person would)."""

        def __getattr__(self, name):
            return lambda *a, **k: None

        def node_started(self, node, source, diagnosis):
            with TreeStore.for_commands(run / "tree.db") as s:
                sid = s.search()["id"]
                if not s.commands(sid):
                    s.queue_command(sid, CommandKind.STOP)
                    s.queue_command(sid, CommandKind.PAUSE)

    outcome = explore(["budget.steps=400", "executor.ahead=1"], resume=run, reporter=StopOnStart())
    assert outcome.stopped and outcome.exit_status == 0
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        stop, pause = s.commands(sid)
        assert stop.status is CommandStatus.APPLIED
        assert pause.status is CommandStatus.MOOT and "stopping" in pause.result
        assert s.run_state(sid)[0] is RunState.STOPPED
        nodes = s.nodes(sid)
        assert sum(n.status.finished for n in nodes if n.depth) == finished_before + 1  # only the one started
        assert [n for n in nodes if n.status is NodeStatus.PENDING]  # asked ahead, left for --resume


def test_old_store_gets_its_state_from_its_last_lifecycle_event(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=60"])
    with TreeStore(run / "tree.db") as s:  # as a store from before the migration: no state, a stop by hand
        s.db.execute("UPDATE searches SET state = NULL")
        s.db.execute("DELETE FROM migrations WHERE name = '0005_run_state'")
        s.add_event(s.search()["id"], EventKind.STOPPED, "stopped by command 3 from the service")
        s.db.execute("ALTER TABLE searches DROP COLUMN state")
        s.db.execute("ALTER TABLE searches DROP COLUMN state_reason")
        s.db.execute("ALTER TABLE searches DROP COLUMN state_at")
    with TreeStore(run / "tree.db") as s:
        assert s.run_state(s.search()["id"]) == (RunState.STOPPED, "stopped by command 3 from the service")


def test_control_commands_to_a_finished_run_are_refused_with_the_reason(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=60"])
    client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
    for kind in ("pause", "stop", "resume"):
        r = client.post(f"/api/runs/run/{kind}", json={})
        assert r.status_code == 409 and "finished" in r.json()["detail"] and r.json()["run_status"] == "finished"
    assert client.get("/api/runs").json()["runs"][0]["accepts"] == ["child", "close"]  # queued for a resume
    with TreeStore.read_only(run / "tree.db") as s:
        parent = next(n for n in s.nodes(s.search()["id"]) if n.depth == 1 and n.status is NodeStatus.DONE)
    first = client.post(f"/api/runs/run/nodes/{parent.id}/children", json={"recipe": {"dropout": 0.05}})
    assert first.status_code == 202 and "when the run is resumed" in first.json()["message"]
    again = client.post(f"/api/runs/run/nodes/{parent.id}/children", json={"recipe": {"dropout": 0.05}})
    assert again.status_code == 422 and "duplicate" in again.json()["detail"]  # refused at once, not queued twice
