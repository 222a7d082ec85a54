"""``inline``: one segment at a time, in the coordinator's own process and thread (the default).

Every evaluation reaches the stopper before the task takes its next step, so a pruned
segment stops exactly where the stopper decided.
"""

from __future__ import annotations

from collections import deque

from searchmgr.executors.base import EvalSink, Executor, Job, Trained, run_job
from searchmgr.tasks import Task


class InlineExecutor(Executor):
    name = "inline"

    def __init__(self, task: Task):
        self.task = task
        self.capacity = 1
        self.queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def wait(self, sink: EvalSink) -> list[Trained]:
        job = self.queue.popleft()
        return [run_job(job, self.task, lambda step, metrics: sink.evaluated(job.node_id, step, metrics))]
