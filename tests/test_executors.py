"""Executors behind the coordinator: local worker processes and Ray, worker deaths, retention, asking ahead."""

import builtins
import multiprocessing
import os
import signal
import threading
import time

import pytest

from searchmgr import tree as T
from searchmgr.config import ConfigError
from searchmgr.search import explore
from searchmgr.store import DecisionKind, NodeStatus, TreeStore, load_checkpoint

TOY = ["task=toy", "preset=smoke", "threads=1"]


def nodes_of(run):
    with TreeStore(run / "tree.db") as s:
        return s.nodes(s.search()["id"])


def check_run(run, budget):
    """Every node finished once, within budget, metrics recorded once per step, checkpoints verified."""
    nodes = nodes_of(run)
    assert all(n.status.finished for n in nodes)
    assert T.steps_used(nodes) <= budget
    with TreeStore(run / "tree.db") as s:
        for n in nodes:
            steps = [step for step, _ in s.metrics(n.id)]
            assert len(steps) == len(set(steps)), f"node {n.id} has duplicate evaluations"
            if n.status is NodeStatus.PRUNED:
                assert steps and max(steps) == n.start_step + n.steps_trained or n.steps_trained >= max(steps) - n.start_step
            if n.checkpoint:
                load_checkpoint(run / n.checkpoint, n.checkpoint_sha256)
    for n in nodes:  # never two children of one parent with the same recipe
        kids = [tuple(sorted(c.recipe.items())) for c in T.children(nodes, n.id)]
        assert len(kids) == len(set(kids))
    return nodes


def overlapping(nodes):
    """Pairs of nodes whose training intervals overlap (they trained at the same time)."""
    spans = sorted((n.started_at, n.finished_at) for n in nodes if n.started_at and n.finished_at and n.depth > 0)
    return sum(1 for (a0, a1), (b0, b1) in zip(spans, spans[1:]) if b0 < a1)


def kill_when_training(run, kill, min_done=2):
    """In the background, once ``min_done`` searched nodes finished and a searched node trains, call ``kill``."""
    killed = {}

    def watch():
        deadline = time.time() + 300  # Ray starts slowly on a busy 2-core machine
        while time.time() < deadline and not killed:
            if (run / "tree.db").exists():
                try:
                    nodes = nodes_of(run)
                except Exception:
                    nodes = []
                done = [n for n in nodes if n.depth > 0 and n.status is NodeStatus.DONE]
                running = [n for n in nodes if n.status is NodeStatus.RUNNING and n.steps_trained > 0]
                if len(done) >= min_done and running and kill():
                    killed["at"] = [n.id for n in running]
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return killed, t


@pytest.mark.slow
def test_process_workers_train_at_once_and_survive_a_killed_worker(tmp_path):
    run = tmp_path / "run"

    def kill():
        workers = [p for p in multiprocessing.active_children() if p.name.startswith("searchmgr-worker")]
        if not workers:
            return False
        os.kill(workers[0].pid, signal.SIGKILL)
        return True

    killed, watcher = kill_when_training(run, kill)
    outcome = explore(TOY + ["step_delay_s=0.01", "budget.steps=300", "executor.name=process",
                             "executor.workers=2", f"out={run}"])
    watcher.join(timeout=5)
    nodes = check_run(run, 300)
    assert killed, "never saw a worker to kill"
    with TreeStore(run / "tree.db") as s:
        events = s.events(1)
    interrupted = [e for e in events if e["kind"] == "node_interrupted"]
    assert interrupted and "died" in interrupted[0]["message"]
    retried = interrupted[0]["node_id"]
    assert T.by_id(nodes)[retried].status.finished  # the interrupted node was trained again
    # the death is seen while the other worker keeps the message queue busy: the node is retried (on a fresh
    # worker) while the search goes on, not after the survivor has trained everything else alone
    others = [n.finished_at for n in nodes if n.depth > 0 and n.id != retried]
    assert T.by_id(nodes)[retried].started_at < max(others), "the dead worker was replaced only at the end"
    assert overlapping(nodes) >= 1, "two workers never trained at the same time"
    assert outcome.steps_used == T.steps_used(nodes) and outcome.best is not None


@pytest.mark.slow
def test_ray_tasks_cancel_pruned_segments_and_retry_a_dead_worker(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")  # .ci/run installs it
    import psutil
    import ray

    run = tmp_path / "run"

    def kill():  # a Ray worker process running a segment is titled ray::_segment
        segs = [p for p in psutil.process_iter(["name", "cmdline"])
                if "_segment" in f"{p.info['name']} {' '.join(p.info['cmdline'] or [])}" and "ray" in
                f"{p.info['name']} {' '.join(p.info['cmdline'] or [])}"]
        if not segs:
            return False
        segs[0].kill()
        return True

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    killed, watcher = kill_when_training(run, kill)
    try:
        explore(TOY + ["step_delay_s=0.03", "budget.steps=300", "eval_every=2", "manager.name=random",
                       "executor.name=ray", "executor.workers=2",
                       f"out={run}"])
    finally:
        ray.shutdown()
    watcher.join(timeout=5)
    nodes = check_run(run, 300)
    assert killed, "never saw a Ray worker to kill"
    with TreeStore(run / "tree.db") as s:
        events = s.events(1)
    assert any(e["kind"] == "node_interrupted" for e in events)
    assert any(n.status is NodeStatus.PRUNED for n in nodes)  # pruned through ray.cancel
    assert overlapping(nodes) >= 1


def test_ray_missing_says_what_to_install(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'searchmgr\[ray\]'"):
        explore(TOY + ["executor.name=ray", f"out={tmp_path / 'r'}"])


@pytest.mark.parametrize("words, message", [
    (["executor.workers=2"], "needs executor.name=process or ray"),
    (["executor.name=dask"], "unknown executor 'dask'"),
    (["executor.name=process", "executor.gpus_per_worker=0.5"], "whole number"),
    (["executor.address=ray://x:1"], "add executor.name=ray"),
    (["checkpoints.keep=some"], "checkpoints.keep"),
])
def test_bad_executor_settings_fail_before_training(tmp_path, words, message):
    with pytest.raises(ConfigError, match=message):
        explore(TOY + words + [f"out={tmp_path / 'r'}"])
    assert not (tmp_path / "r" / "tree.db").exists()


def test_retention_deletes_only_what_no_policy_can_select(tmp_path):
    explore(TOY + ["budget.steps=240", "checkpoints.keep=all", f"out={tmp_path / 'all'}"])
    lean = explore(TOY + ["budget.steps=240", f"out={tmp_path / 'lean'}"])
    all_nodes, lean_nodes = nodes_of(tmp_path / "all"), nodes_of(tmp_path / "lean")
    assert [(n.recipe, n.val_score) for n in all_nodes] == [(n.recipe, n.val_score) for n in lean_nodes]
    files = lambda run: sorted(p.name for p in (run / "checkpoints").iterdir())
    # every file on disk is referenced by the store, and every reference has its file
    for run, nodes in ((tmp_path / "all", all_nodes), (tmp_path / "lean", lean_nodes)):
        assert files(run) == sorted(n.checkpoint.split("/")[-1] for n in nodes if n.checkpoint)
    assert len(files(tmp_path / "lean")) < len(files(tmp_path / "all"))
    kept = {n.id for n in lean_nodes if n.checkpoint}
    assert lean.best.id in kept and lean.fixed.id in kept  # the exportable models stay
    for n in lean_nodes:  # whatever UCT may still expand keeps its checkpoint
        if n.status is NodeStatus.DONE and n.depth < 3:
            assert n.id in kept
    # the deletions were recorded, and a resume never needs a deleted file
    with TreeStore(tmp_path / "lean" / "tree.db") as s:
        assert any(e["kind"] == "checkpoint_deleted" for e in s.events(1))
    explore(["budget.steps=400"], resume=tmp_path / "lean")
    check_run(tmp_path / "lean", 400)


def test_same_fallback_as_manager_is_not_asked_twice(tmp_path):
    run = tmp_path / "run"
    explore(TOY + ["budget.steps=240", f"out={run}"])  # heuristic, fallback heuristic
    with TreeStore(run / "tree.db") as s:
        sources = {d.source for d in s.decisions(1, kind=DecisionKind.MANAGER)}
        rejected = [d for d in s.decisions(1) if d.verdict == "rejected"]
    assert not any("fallback" in src for src in sources)
    assert all(d.rejection and d.reason.startswith(d.rejection) for d in rejected)


@pytest.mark.slow
def test_slow_manager_is_asked_while_a_worker_trains(tmp_path):
    from fake_openai_server import FakeOpenAI, surface_reading_answers

    run = tmp_path / "run"
    with FakeOpenAI(default=surface_reading_answers(), delay=0.3) as srv:
        explore(TOY + ["step_delay_s=0.02", "budget.steps=200", "executor.name=process", "manager.name=openai",
                       f"manager.base_url={srv.base_url}", "stopper.name=none", f"out={run}"])
    nodes = check_run(run, 200)
    with TreeStore(run / "tree.db") as s:
        asked = [d for d in s.decisions(1, kind=DecisionKind.MANAGER) if d.source == "openai" and d.applied]
    assert asked
    # a proposal answered while another node trained: the worker did not wait for the endpoint
    during = [d for d in asked for n in nodes
              if n.started_at and n.finished_at and n.started_at < d.created_at < n.finished_at]
    assert during, "every proposal was asked while no segment trained"
