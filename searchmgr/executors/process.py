"""``process``: N local worker processes, one per GPU or per CPU share.

Workers are spawned (not forked: torch and threads do not survive a fork) and each
rebuilds the task once. Worker ``i`` sees only GPU ``i`` when ``executor.gpus_per_worker``
is set (``CUDA_VISIBLE_DEVICES``) and uses ``threads`` torch threads. Jobs and results
cross as small messages: checkpoints go by path. A worker that dies (killed, out of
memory) ends its job as interrupted, so the coordinator retries the node, and a fresh
worker takes its place.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any

from searchmgr.executors.base import EvalSink, Executor, Job, Trained, run_job

POLL_S = 0.2


def _worker(index: int, gpus: int, inbox: Any, outbox: Any, stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    if gpus > 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(index * gpus + g) for g in range(gpus))
    import torch

    import searchmgr.tasks  # noqa: F401  (warm: the first job should not pay the imports)

    outbox.put(("ready", index))
    tasks: dict[tuple, Any] = {}
    while True:
        job: Job | None = inbox.get()
        if job is None:
            return
        if job.threads:
            torch.set_num_threads(job.threads)
        key = (job.task.ref, tuple(sorted((k, repr(v)) for k, v in job.task.options.items())))
        try:
            task = tasks.get(key) or tasks.setdefault(key, job.task.build())
        except Exception as e:  # the task cannot be built here: fail the job, keep the worker
            outbox.put(("done", index, Trained(job.node_id, error=f"{type(e).__name__}: {e}")))
            continue

        def on_eval(step: int, metrics: dict[str, float], node: int = job.node_id) -> bool:
            outbox.put(("eval", index, node, step, metrics))
            return stop.is_set()

        outbox.put(("done", index, run_job(job, task, on_eval)))


@dataclass
class _Slot:
    process: Any
    inbox: Any
    stop: Any
    job: Job | None = None


class ProcessExecutor(Executor):
    name = "process"

    def __init__(self, workers: int, gpus_per_worker: int = 0):
        self.capacity = workers
        self.gpus = gpus_per_worker
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()
        self.slots: list[_Slot] = [self._spawn(i) for i in range(workers)]
        self._await_ready(workers)

    def _await_ready(self, count: int, timeout_s: float = 300.0) -> None:
        """Block until ``count`` workers have imported torch and the tasks (start-up is not search time)."""
        deadline = time.monotonic() + timeout_s
        while count:
            try:
                msg = self.outbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.close()
                raise RuntimeError(f"{count} worker process(es) did not start within {timeout_s:g}s") from None
            count -= msg[0] == "ready"

    def _spawn(self, index: int) -> _Slot:
        inbox, stop = self.ctx.Queue(), self.ctx.Event()
        p = self.ctx.Process(target=_worker, args=(index, self.gpus, inbox, self.outbox, stop), daemon=True,
                             name=f"searchmgr-worker-{index}")
        p.start()
        return _Slot(p, inbox, stop)

    def submit(self, job: Job) -> None:
        i = next(i for i, s in enumerate(self.slots) if s.job is None)
        slot = self.slots[i]
        slot.stop.clear()
        slot.job = job
        slot.inbox.put(job)

    def busy(self) -> list[int]:
        return [s.job.node_id for s in self.slots if s.job is not None]

    def wait(self, sink: EvalSink) -> list[Trained]:
        done: list[Trained] = []
        next_reap = time.monotonic() + POLL_S
        while not done:
            if time.monotonic() >= next_reap:  # on a clock, not on a quiet outbox: busy workers never let it rest
                done += self._reap()
                next_reap = time.monotonic() + POLL_S
                continue
            try:
                msg = self.outbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if msg[0] == "ready":
                continue
            if msg[0] == "eval":
                _, index, node, step, metrics = msg
                slot = self.slots[index]
                if slot.job is not None and slot.job.node_id == node and sink.evaluated(node, step, metrics):
                    slot.stop.set()
            else:
                _, index, trained = msg
                slot = self.slots[index]
                if slot.job is not None and slot.job.node_id == trained.node_id:
                    slot.job = None
                    done.append(trained)
        return done

    def _reap(self) -> list[Trained]:
        """Jobs of workers that died, as interrupted results; dead workers are replaced."""
        out = []
        for i, slot in enumerate(self.slots):
            if slot.process.is_alive():
                continue
            if slot.job is not None:
                out.append(Trained(slot.job.node_id, interrupted=True,
                                   error=f"worker {i} died (exit code {slot.process.exitcode})"))
            self.slots[i] = self._spawn(i)
        return out

    def close(self) -> None:
        """Idle workers exit; busy ones (the search was interrupted) are killed: their nodes stay running in
        the store and resume retrains them."""
        for slot in self.slots:
            if slot.job is not None:
                slot.process.kill()
            elif slot.process.is_alive():
                slot.inbox.put(None)
        for slot in self.slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.kill()
