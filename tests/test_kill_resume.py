"""Kill a real `searchmgr explore` process with SIGKILL mid-segment, then resume it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from searchmgr import tree as T
from searchmgr.search import explore
from searchmgr.store import NodeStatus, TreeStore, load_checkpoint


def snapshot(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT id, status, steps_trained FROM nodes").fetchall()
    except sqlite3.OperationalError:
        rows = []
    con.close()
    return rows


@pytest.mark.parametrize("executor", [[], ["executor.name=process", "executor.workers=2", "threads=1"]],
                         ids=["inline", "process"])
def test_sigkill_mid_segment_then_resume(tmp_path, executor):
    """The coordinator dies (with its workers, for the process executor): resume requeues what was in flight,
    and nothing finished is lost or trained twice."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "searchmgr", "explore", "task=toy", "preset=smoke", "step_delay_s=0.02",
           "budget.steps=200", f"out={run}", *executor]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    db = run / "tree.db"
    deadline = time.time() + 120
    killed_running = None
    while time.time() < deadline:
        if db.exists():
            rows = snapshot(db)
            done = [r for r in rows if r[1] == "done" and r[0] != 1]
            running = [r for r in rows if r[1] == "running" and r[2] > 0]
            if len(done) >= 3 and running:
                os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its worker processes
                killed_running = running[0][0]
                break
        if proc.poll() is not None:
            raise AssertionError(f"explore ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_running is not None, "never saw a running segment to kill"
    assert proc.returncode == -signal.SIGKILL

    with TreeStore(db) as store:
        before = {n.id: n for n in store.nodes(1)}
    assert before[killed_running].status is NodeStatus.RUNNING  # the dead process could not clean up
    finished_before = {i: n for i, n in before.items() if n.status.finished}

    outcome = explore(["budget.steps=200"], resume=run)

    with TreeStore(db) as store:
        after = {n.id: n for n in store.nodes(1)}
        events = [e["kind"] for e in store.events(1)]
        # the interrupted node was retrained from scratch: its metrics start at its segment start
        retried = store.metrics(killed_running)
        for n in after.values():
            if n.checkpoint:
                load_checkpoint(run / n.checkpoint, n.checkpoint_sha256)  # sha256 verified
    assert "interrupted" in events
    for i, n in finished_before.items():  # no finished node lost or changed
        assert after[i].status == n.status and after[i].val_score == n.val_score
        assert after[i].finished_at == n.finished_at
    assert after[killed_running].status.finished
    assert retried[0][0] > after[killed_running].start_step and len({s for s, _ in retried}) == len(retried)
    assert not any(n.status in (NodeStatus.RUNNING, NodeStatus.PENDING, NodeStatus.INTERRUPTED)
                   for n in after.values())
    # no duplicates: siblings differ in recipe
    nodes = list(after.values())
    for n in nodes:
        kids = [c.recipe for c in T.children(nodes, n.id)]
        assert len(kids) == len({tuple(sorted(r.items())) for r in kids})
    assert T.fixed_path(nodes)[-1].depth == 3
    assert outcome.steps_used <= 200
