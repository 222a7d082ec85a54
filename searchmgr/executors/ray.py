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

from searchmgr.executors.base import EvalSink, Executor, ExecutorUnavailable, Job, Trained, run_job

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
        self.events = Queue()
        self.remote = ray.remote(num_cpus=threads or 1, num_gpus=gpus_per_worker, max_retries=0)(_segment)
        self.running: dict[Any, int] = {}  # object ref -> node id
        warm = ray.remote(num_cpus=threads or 1, num_gpus=gpus_per_worker)(_warm)
        ray.get([warm.remote() for _ in range(workers)])  # start-up is not search time
        self.cancelled: set[int] = set()

    def submit(self, job: Job) -> None:
        self.running[self.remote.remote(job, self.events)] = job.node_id

    def _drain(self, sink: EvalSink) -> None:
        while not self.events.empty():
            for node, step, metrics in self.events.get_nowait_batch(self.events.qsize()):
                live = node in self.running.values() and node not in self.cancelled
                if live and sink.evaluated(node, step, metrics):
                    ref = next(r for r, n in self.running.items() if n == node)
                    self.ray.cancel(ref, force=False)
                    self.cancelled.add(node)

    def wait(self, sink: EvalSink) -> list[Trained]:
        from ray.exceptions import RayError, TaskCancelledError

        while True:
            self._drain(sink)
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_S)
            if not ready:
                continue
            self._drain(sink)
            out = []
            for ref in ready:
                node = self.running.pop(ref)
                try:
                    out.append(self.ray.get(ref))
                except TaskCancelledError:
                    out.append(Trained(node, stopped=True))  # the coordinator recorded where it was pruned
                except RayError as e:  # the worker died or the task could not run: retry the node
                    out.append(Trained(node, interrupted=True, error=f"{type(e).__name__}: {str(e)[:500]}"))
                self.cancelled.discard(node)
            return out

    def close(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref, force=True)
        self.running.clear()
