"""Executors report events (evaluations, ends, deaths) in order; the coordinator answers a prune with stop()."""

import os
import signal

import pytest

from searchmgr.executors import Died, Ended, Evaluated, Job, TaskSpec
from searchmgr.executors.inline import InlineExecutor
from searchmgr.store import load_checkpoint, save_checkpoint
from searchmgr.tasks import load_task
from searchmgr.tasks.base import Segment

SPEC = TaskSpec("toy", {"preset": "smoke"})


def job_of(tmp_path, task, node_id=1, steps=20, eval_every=5, delay=None):
    root = tmp_path / "root.pt"
    sha = save_checkpoint(task.init(0), root)
    spec = SPEC if delay is None else TaskSpec("toy", {"preset": "smoke", "step_delay_s": delay})
    return Job(node_id, spec, task.base_recipe(), Segment(0, steps, 60, eval_every), root, sha,
               tmp_path / f"node-{node_id}.pt", threads=1)


def drain(executor, stop_at=None):
    """Every event until the job ends, as the coordinator takes them (stop() at the evaluation ``stop_at``)."""
    seen = []
    while not seen or isinstance(seen[-1], Evaluated):
        for event in executor.events():
            seen.append(event)
            if isinstance(event, Evaluated) and event.step == stop_at:
                executor.stop(event.node_id)
    return seen


def test_inline_events_of_a_finished_segment(tmp_path):
    task = load_task("toy", {"preset": "smoke"})
    executor = InlineExecutor(task)
    job = job_of(tmp_path, task)
    executor.submit(job)
    events = drain(executor)
    assert [e.step for e in events[:-1]] == [5, 10, 15, 20] and all(e.node_id == 1 for e in events)
    end = events[-1]
    assert isinstance(end, Ended) and not end.trained.stopped and end.trained.steps_done == 20
    load_checkpoint(job.checkpoint, end.trained.checkpoint_sha256)
    assert end.trained.metrics == events[-2].metrics  # the last evaluation is the segment's result


def test_inline_segment_stops_at_the_evaluation_the_coordinator_stopped_it(tmp_path):
    task = load_task("toy", {"preset": "smoke"})
    executor = InlineExecutor(task)
    executor.submit(job_of(tmp_path, task))
    events = drain(executor, stop_at=10)
    assert [type(e) for e in events] == [Evaluated, Evaluated, Ended]
    assert [e.step for e in events[:2]] == [5, 10]
    end = events[-1].trained
    assert end.stopped and end.steps_done == 10 and end.checkpoint_sha256 is None
    assert not (tmp_path / "node-1.pt").exists()
    # the next segment of the same executor trains to its end: a stop belongs to its segment only
    executor.submit(job_of(tmp_path, task, node_id=2))
    assert drain(executor)[-1].trained.steps_done == 20


def test_inline_training_waits_while_the_coordinator_holds_an_evaluation(tmp_path):
    task = load_task("toy", {"preset": "smoke"})
    calls = []
    inner = task.inner.train_segment

    def counting(checkpoint, recipe, segment, on_eval):
        return inner(checkpoint, recipe, segment, lambda step, m: calls.append(step) or on_eval(step, m))

    task.inner.train_segment = counting
    executor = InlineExecutor(task)
    executor.submit(job_of(tmp_path, task))
    first = executor.events()
    assert [e.step for e in first] == [5] and calls == [5]  # the segment waits for the coordinator's answer
    assert [e.step for e in executor.events()] == [10] and calls == [5, 10]
    executor.close()  # the search stops at once: the segment stops at the evaluation it waits at


@pytest.mark.slow
def test_process_events_in_order_for_a_stopped_segment_and_a_dead_worker(tmp_path):
    from searchmgr.executors.process import ProcessExecutor

    task = load_task("toy", {"preset": "smoke"})
    executor = ProcessExecutor(1)
    try:
        executor.submit(job_of(tmp_path, task, steps=60, eval_every=2, delay=0.01))
        events = drain(executor, stop_at=4)
        evaluations, end = events[:-1], events[-1]
        assert all(isinstance(e, Evaluated) for e in evaluations) and isinstance(end, Ended)
        assert [e.step for e in evaluations] == list(range(2, 2 * len(evaluations) + 1, 2))
        assert end.trained.stopped and 4 <= end.trained.steps_done < 60  # the stop flag, at a later evaluation
        assert end.trained.steps_done == evaluations[-1].step  # nothing of it is reported after its end
        executor.submit(job_of(tmp_path, task, node_id=2, steps=60, eval_every=2, delay=0.05))
        first = executor.events()
        assert first and isinstance(first[0], Evaluated) and first[0].node_id == 2
        os.kill(executor.slots[0].process.pid, signal.SIGKILL)
        events = first + drain(executor)
        assert isinstance(events[-1], Died) and events[-1].node_id == 2 and "died" in events[-1].error
        assert events[-1].trained.interrupted  # what the coordinator tells: the node is retried
    finally:
        executor.close()
