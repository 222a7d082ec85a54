"""``ray``: one ``ray.remote`` task per segment, on a local Ray or an existing cluster.

``ray.init()`` starts a local cluster unless ``executor.address`` names one. Each
segment asks for ``threads`` CPUs (1 when unset) and ``executor.gpus_per_worker`` GPUs.
Checkpoints go by path on storage every worker can read (the run directory must be
on a shared file system for a multi-node cluster), never through the object store.
Evaluations stream back through a Ray queue; a pruned segment is cancelled with
``ray.cancel``; a task whose worker died ends as interrupted and is retried.

Ray is an optional extra: ``pip install 'searchmgr[ray]'``.
"""

from __future__ import annotations

import os
from typing import Any

from searchmgr.executors.base import Executor, ExecutorUnavailable, Job, run_job
from searchmgr.executors.events import Died, Ended, Evaluated, Event, Trained

POLL_S = 0.2


def _warm() -> None:
    import searchmgr.tasks  # noqa: F401
    import torch  # noqa: F401


def _segment(job: Job, events: Any) -> Trained:
    """The remote body: rebuild the task (cached per worker process), train, stream evaluations."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    cache = _segment.__dict__.setdefault("tasks", {})
    key = job.task.key()
    if key not in cache:
        cache[key] = job.task.build()

    def on_eval(step: int, metrics: dict[str, float]) -> bool:
        events.put((job.node_id, step, metrics))
        return False  # a prune arrives as ray.cancel

    return run_job(job, cache[key], on_eval)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, workers: int, gpus_per_worker: int = 0, address: str | None = None,
                 threads: int | None = None):
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise ExecutorUnavailable("executor.name=ray needs Ray: pip install 'searchmgr[ray]' "
                                      "(or choose executor.name=process)") from None
        self.ray = ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(workers * (threads or 1), 1), include_dashboard=False, log_to_driver=False)
        self.capacity = workers
        self.events_queue = Queue()
        self.remote = ray.remote(num_cpus=threads or 1, num_gpus=gpus_per_worker, max_retries=0)(_segment)
        self.running: dict[Any, int] = {}  # object ref -> node id
        warm = ray.remote(num_cpus=threads or 1, num_gpus=gpus_per_worker)(_warm)
        ray.get([warm.remote() for _ in range(workers)])  # start-up is not search time
        self.cancelled: set[int] = set()

    def submit(self, job: Job) -> None:
        self.running[self.remote.remote(job, self.events_queue)] = job.node_id

    def _evaluations(self) -> list[Evaluated]:
        """The evaluations queued so far of segments still running and not cancelled."""
        out = []
        while not self.events_queue.empty():
            for node, step, metrics in self.events_queue.get_nowait_batch(self.events_queue.qsize()):
                if node in self.running.values() and node not in self.cancelled:
                    out.append(Evaluated(node, step, metrics))
        return out

    def _ended(self, ref: Any) -> Ended | Died:
        from ray.exceptions import RayError, TaskCancelledError

        node = self.running.pop(ref)
        self.cancelled.discard(node)
        try:
            return Ended(self.ray.get(ref))
        except TaskCancelledError:
            return Ended(Trained(node, stopped=True))  # the coordinator recorded where it was pruned
        except RayError as e:  # the worker died or the task could not run: retry the node
            return Died(node, f"{type(e).__name__}: {str(e)[:500]}")

    def events(self) -> list[Event]:
        while True:
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0)
            out: list[Event] = self._evaluations()  # after the wait: an ended segment's evaluations come first
            out += [self._ended(ref) for ref in ready]
            if out:
                return out
            self.ray.wait(list(self.running), num_returns=1, timeout=POLL_S)

    def stop(self, node_id: int) -> None:
        ref = next((r for r, n in self.running.items() if n == node_id), None)
        if ref is not None and node_id not in self.cancelled:
            self.ray.cancel(ref, force=False)
            self.cancelled.add(node_id)

    def close(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        self.running.clear()
