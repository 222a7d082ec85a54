"""``process``: N local worker processes, one per GPU or per CPU share.

Workers are spawned (not forked: torch and threads do not survive a fork) and each
rebuilds the task once. With ``executor.gpus_per_worker=G`` worker ``i`` sees only the
``i``-th group of G GPUs among those visible to the search (``CUDA_VISIBLE_DEVICES``, which
the search's own setting narrows), so a task's ``device=cuda`` is that worker's GPU; a
replacement worker gets the same GPUs. Too few GPUs is an error before any worker starts.
Each worker uses ``threads`` torch threads. Jobs and results
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

from searchmgr.executors.base import Executor, ExecutorUnavailable, Job, run_job
from searchmgr.executors.events import Died, Ended, Evaluated, Event, Trained

POLL_S = 0.2


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out: ``CUDA_VISIBLE_DEVICES``' entries when it is set, else the
    indices of the GPUs torch counts (none on a machine without CUDA)."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        return [d.strip() for d in mask.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def assign_gpus(workers: int, per_worker: int, visible: list[str]) -> list[str | None]:
    """Each worker's ``CUDA_VISIBLE_DEVICES`` (None: leave it alone): worker i gets the i-th group of
    ``per_worker`` visible GPUs. Raises :class:`ExecutorUnavailable` when there are too few."""
    per_worker = int(per_worker)  # whole GPUs (the config refuses fractions for this executor)
    if per_worker <= 0:
        return [None] * workers
    need = workers * per_worker
    if len(visible) < need:
        raise ExecutorUnavailable(
            f"executor.workers={workers} x executor.gpus_per_worker={per_worker} needs {need} GPU(s) but "
            f"{len(visible)} are visible ({visible or 'none'}); lower executor.workers, or set "
            "executor.gpus_per_worker=0 to train on the CPU")
    return [",".join(visible[i * per_worker:(i + 1) * per_worker]) for i in range(workers)]


def _worker(index: int, devices: str | None, inbox: Any, outbox: Any, stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before torch is imported: the worker sees only these
    import torch

    import searchmgr.tasks  # noqa: F401  (warm: the first job should not pay the imports)

    outbox.put(("ready", index))
    tasks: dict[tuple, Any] = {}
    parent = os.getppid()

    def orphaned() -> bool:
        """The search died without closing its workers (SIGKILL): nobody reads what this worker makes any more."""
        return os.getppid() != parent

    while True:
        try:
            job: Job | None = inbox.get(timeout=1.0)
        except queue.Empty:
            if orphaned():
                return
            continue
        if job is None:
            return
        if job.threads:
            torch.set_num_threads(job.threads)
        key = job.task.key()
        try:
            task = tasks.get(key) or tasks.setdefault(key, job.task.build())
        except Exception as e:  # the task cannot be built here: fail the job, keep the worker
            outbox.put(("done", index, Trained(job.node_id, error=f"{type(e).__name__}: {e}")))
            continue

        def on_eval(step: int, metrics: dict[str, float], node: int = job.node_id) -> bool:
            outbox.put(("eval", index, node, step, metrics))
            return stop.is_set() or orphaned()  # nobody will use this segment: stop training it

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
        self.devices = assign_gpus(workers, gpus_per_worker, visible_gpus() if gpus_per_worker else [])
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()
        self.slots: list[_Slot] = [self._spawn(i) for i in range(workers)]
        self._await_ready(workers)
        self.next_reap = time.monotonic() + POLL_S

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
        p = self.ctx.Process(target=_worker, args=(index, self.devices[index], inbox, self.outbox, stop), daemon=True,
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

    def events(self) -> list[Event]:
        out: list[Event] = []
        while not out:
            if time.monotonic() >= self.next_reap:  # on a clock, not on a quiet outbox: busy workers never let it rest
                out += self._reap()
                self.next_reap = time.monotonic() + POLL_S
                continue
            try:
                msg = self.outbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            while msg is not None:  # and whatever else is already there
                out += self._event(msg)
                try:
                    msg = self.outbox.get_nowait()
                except queue.Empty:
                    msg = None
        return out

    def _event(self, msg: tuple) -> list[Event]:
        """A worker's message as an event of the job its slot holds now (none for an earlier job's)."""
        kind, index = msg[0], msg[1]
        if kind == "ready":
            return []
        node = msg[2] if kind == "eval" else msg[2].node_id
        slot = self.slots[index]
        if slot.job is None or slot.job.node_id != node:
            return []
        if kind == "eval":
            return [Evaluated(node, msg[3], msg[4])]
        slot.job = None
        return [Ended(msg[2])]

    def stop(self, node_id: int) -> None:
        for slot in self.slots:
            if slot.job is not None and slot.job.node_id == node_id:
                slot.stop.set()

    def _reap(self) -> list[Died]:
        """Jobs of workers that died; dead workers are replaced."""
        out = []
        for i, slot in enumerate(self.slots):
            if slot.process.is_alive():
                continue
            if slot.job is not None:
                out.append(Died(slot.job.node_id, f"worker {i} died (exit code {slot.process.exitcode})"))
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
