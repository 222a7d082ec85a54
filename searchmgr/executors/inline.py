"""``inline``: one segment at a time, in the coordinator's own process (the default).

The segment trains on a thread of its own that runs only while the coordinator waits in
:meth:`InlineExecutor.events`: at each evaluation it posts the event and waits until the
coordinator has taken it (and called :meth:`~InlineExecutor.stop` if the stopper pruned
it), which the coordinator's next call to ``events`` says. So training and the
coordinator take turns, as if they were one thread, and a pruned segment stops exactly
at the evaluation where the stopper decided.
"""

from __future__ import annotations

import queue
import threading
from collections import deque

from searchmgr.executors.base import Executor, Job, run_job
from searchmgr.executors.events import Ended, Evaluated, Event
from searchmgr.tasks import Task


class InlineExecutor(Executor):
    name = "inline"

    def __init__(self, task: Task):
        self.task = task
        self.capacity = 1
        self.queue: deque[Job] = deque()
        self.posted: queue.Queue[Event | BaseException] = queue.Queue()  # from the training thread
        self.answers: queue.Queue[None] = queue.Queue()  # to it: the coordinator took the last evaluation
        self.thread: threading.Thread | None = None
        self.waiting = False  # the segment waits for the coordinator to take its evaluation
        self.stopped: set[int] = set()
        self.closed = False

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def events(self) -> list[Event]:
        if self.waiting:  # the coordinator took the evaluation (and said stop, if it must): the segment goes on
            self.waiting = False
            self.answers.put(None)
        elif self.thread is None:
            job = self.queue.popleft()
            self.thread = threading.Thread(target=self._train, args=(job,), daemon=True,
                                           name=f"searchmgr-inline-{job.node_id}")
            self.thread.start()
        event = self.posted.get()
        if isinstance(event, Evaluated):
            self.waiting = True
            return [event]
        self.thread.join()
        self.thread = None
        if isinstance(event, BaseException):
            raise event
        self.stopped.discard(event.node_id)  # a node trained again (interrupted, retried) starts afresh
        return [event]

    def stop(self, node_id: int) -> None:
        self.stopped.add(node_id)

    def _train(self, job: Job) -> None:
        def on_eval(step: int, metrics: dict[str, float]) -> bool:
            self.posted.put(Evaluated(job.node_id, step, dict(metrics)))
            self.answers.get()
            return job.node_id in self.stopped or self.closed

        try:
            self.posted.put(Ended(run_job(job, self.task, on_eval)))
        except BaseException as e:  # not the segment's failure (run_job makes those a result): the coordinator's
            self.posted.put(e)

    def close(self) -> None:
        """A segment still training (the search stops at once) stops at its next evaluation."""
        self.closed = True
        if self.waiting:
            self.waiting = False
            self.answers.put(None)
