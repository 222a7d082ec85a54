"""``searchmgr supervise`` on the same rails as explore: one owner, live commands applied at boundaries, run state."""

import os
import signal
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from test_lifecycle import stored, training, wait_for

from searchmgr import tree as T
from searchmgr.commands import HUMAN
from searchmgr.rundir import RunLocked
from searchmgr.serve.app import create_app
from searchmgr.serve.runs import name_runs
from searchmgr.store import CommandStatus, DecisionKind, EventKind, NodeStatus, RunState, TreeStore
from searchmgr.supervise import supervise

# horizon 3 x 20 steps, a boundary every 10 steps of 0.2 s each; the manager is never asked (interval=0)
SLOW = ["task=toy", "preset=smoke", "threads=1", "step_delay_s=0.2", "interval=0"]


def start(*words, resume=None):
    cmd = [sys.executable, "-m", "searchmgr", "supervise", *words] + (["--resume", str(resume)] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def last_step(run):
    with TreeStore.read_only(run / "tree.db") as s:
        row = s.db.execute("SELECT max(step) FROM metrics").fetchone()
        return row[0] or 0


def test_a_second_resume_is_refused_while_the_first_trains(tmp_path):
    run = tmp_path / "s"
    proc = start(*SLOW, f"out={run}")
    try:
        wait_for(lambda: training(run))
        with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
            supervise([], resume=run)
        assert stored(run)[0] is RunState.RUNNING  # the live run is untouched
    finally:
        proc.kill()
        proc.wait()


def test_pause_change_and_stop_apply_at_the_next_boundary(tmp_path):
    run = tmp_path / "s"
    proc = start(*SLOW, f"out={run}")
    try:
        wait_for(lambda: training(run))
        client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
        summary = client.get("/api/runs").json()["runs"][0]
        assert summary["supervised"] and summary["status"] == "running"
        assert summary["accepts"] == ["pause", "stop", "child"]
        assert client.post("/api/runs/s/nodes/1/close", json={}).status_code == 409  # no subtree to close

        before = last_step(run)
        assert client.post("/api/runs/s/pause", json={}).status_code == 202
        wait_for(lambda: stored(run)[0] is RunState.PAUSED, timeout=60)
        with TreeStore.read_only(run / "tree.db") as s:
            paused = [e for e in s.events(s.search()["id"]) if e["kind"] == EventKind.PAUSED.value]
        at = int(paused[0]["message"].rsplit(" ", 1)[1])
        assert at <= before + 10  # within one boundary of the command
        assert last_step(run) == at  # and nothing trains while paused
        assert client.get("/api/runs").json()["runs"][0]["accepts"] == ["resume", "stop", "child"]

        tip = next(n for n in stored(run)[1] if n.status is NodeStatus.RUNNING)
        bad = client.post(f"/api/runs/s/nodes/{tip.id}/children", json={"recipe": {"lr": 1.0}})
        assert bad.status_code == 422 and "out_of_bounds" in bad.json()["detail"]
        ok = client.post(f"/api/runs/s/nodes/{tip.id}/children", json={"recipe": {"dropout": 0.05}, "note": "a bit"})
        assert ok.status_code == 202
        again = client.post(f"/api/runs/s/nodes/{tip.id}/children", json={"recipe": {"dropout": 0.05}})
        assert again.status_code == 422 and "duplicate" in again.json()["detail"]  # the same change twice
        assert client.post("/api/runs/s/resume", json={}).status_code == 202
        human = wait_for(lambda: [n for n in stored(run)[1] if n.source == HUMAN], timeout=60)[0]
        assert human.parent_id == tip.id and human.recipe["dropout"] == 0.05 and human.start_step == at

        assert client.post("/api/runs/s/stop", json={}).status_code == 202
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    state, nodes = stored(run)
    assert state is RunState.STOPPED and f"supervise --resume {run}" in out
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        cmds = s.commands(sid)
        assert [c.status for c in cmds] == [CommandStatus.APPLIED] * 4
        d = s.decision(human.decision_id)
        assert d.source == HUMAN and d.kind is DecisionKind.MANAGER and d.applied and d.applied_step == at
    stop_at = next(n for n in nodes if n.id == human.id).end_step
    assert stop_at < 60 and all(n.status is NodeStatus.DONE for n in nodes)  # ended at a boundary, checkpointed
    client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
    dead = client.post("/api/runs/s/pause", json={})
    assert dead.status_code == 409 and f"supervise --resume {run}" in dead.json()["detail"]

    outcome = supervise([], resume=run)  # continues from the stop to the horizon
    assert not outcome.stopped and outcome.chain[-1].end_step == 60
    state, nodes = stored(run)
    chain = [n for n in nodes if n.source not in (T.ROOT, T.FIXED)]
    assert state is RunState.FINISHED and chain[-1].recipe["dropout"] == 0.05
    assert any(n.parent_id == human.id and n.start_step == stop_at for n in chain)


def test_sigterm_stops_a_supervised_run_at_a_boundary(tmp_path):
    run = tmp_path / "s"
    proc = start(*SLOW, f"out={run}")
    wait_for(lambda: training(run))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    state, nodes = stored(run)
    assert state is RunState.STOPPED and all(n.status is NodeStatus.DONE for n in nodes)
