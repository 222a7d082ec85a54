"""Starting and continuing searches: build the task, create or reopen the run, hand over to the coordinator.

The store is the single source of truth: the coordinator (:mod:`searchmgr.coordinator`)
reads the tree from it and writes every result back in one transaction, so a killed
process loses at most the segments that were running, and :func:`resume_run` continues
where it stopped. Every search first grows the fixed path (the base recipe held for
every segment) to the full horizon, so it measures itself against its own fixed
baseline; then UCT with virtual-child expansion decides (:mod:`searchmgr.policies`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from searchmgr import rundir
from searchmgr import tree as T
from searchmgr.config import FROZEN_KEYS, ConfigError, SearchConfig, build_config, merge, parse_overrides
from searchmgr import selection
from searchmgr.coordinator import Coordinator
from searchmgr.executors import ExecutorUnavailable, TaskSpec
from searchmgr.outcome import Outcome
from searchmgr.progress import Reporter
from searchmgr.repair import repair
from searchmgr.rundir import CONFIG_NAME, Run
from searchmgr.sanitize import Redactor, cap, shorten
from searchmgr.signals import StopSignals
from searchmgr.store import DiskFull, EventKind, NodeStatus, RunState, StoreError, TreeStore, save_checkpoint
from searchmgr.tasks import Task, TaskError, load_task, reference_of, source_change


def resolve(config: SearchConfig, instance: Task | None = None) -> tuple[SearchConfig, Task]:
    """Build the task (``instance``, or what ``config.task`` names) and fill the config's defaults from it;
    raise :class:`ConfigError` on any problem."""
    if instance is not None and config.executor.name != "inline":
        raise ConfigError("explore(task=<instance>) trains in this process only (executor.name=inline); for "
                          "process or ray workers give task=<module:attr or path/file.py:attr> so they can import it")
    try:
        task = load_task(config.task, config.task_options, instance)
    except TaskError as e:
        raise ConfigError(str(e)) from None
    unknown = sorted(set(config.policy.grid) - set(task.surface.names))
    if unknown:
        raise ConfigError(f"grid knob(s) {unknown} are not knobs of task {task.name}; its knobs are "
                          f"{task.surface.names}")
    d = task.search_defaults()
    budget = config.budget.model_copy(update={"steps": config.budget.steps or d.budget_steps})
    config = config.model_copy(update={
        "select": config.select.model_copy(update={"reevaluate": selection.reevaluate_count(config.select, task)}),
        "segment_steps": config.segment_steps or d.segment_steps,
        "max_depth": config.max_depth or d.max_depth,
        "eval_every": config.eval_every or d.eval_every,
        "budget": budget,
        "task_options": task.options.model_dump(mode="json"),
        "task": task.source.reference,
    })
    config = build_config(config.model_dump(mode="json"))
    config.check_resolved()
    return config, task


def _coordinator(run: Run, config: SearchConfig, task: Task, search_id: int,
                 reporter: Reporter | None) -> Coordinator:
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    try:
        return Coordinator(run.path, config, task, TaskSpec(config.task, config.task_options), run.store, search_id,
                           reporter, owner=run.lock)
    except ExecutorUnavailable as e:
        run.close()
        raise ConfigError(str(e)) from None


def build_root(run_dir: Path, store: TreeStore, config: SearchConfig, task: Task, *, kind: str = "run",
               supervise: dict | None = None) -> None:
    """A new run's contents: its config, the search row and the root (the untrained model, the base recipe);
    a supervised run (``supervise``: its settings) records them too."""
    try:
        info = task.info()
        state = task.init(config.seed)
    except (ValueError, OSError) as e:  # bad data files and the like: the options are at fault
        raise ConfigError(f"task {task.name} cannot start: {type(e).__name__}: {cap(str(e), 400)}; fix its "
                          "options (data=, preset= ...)") from e
    (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    sid = store.create_search(config.task, config.model_dump(mode="json"), task.surface.describe(),
                              task.surface.fingerprint(), info)
    if supervise is not None:
        store.set_supervision(sid, supervise)
    root = store.add_node(sid, None, 0, 0, 0, task.base_recipe(), T.ROOT, status=NodeStatus.RUNNING)
    ref = rundir.checkpoint_ref(root.id)
    sha = save_checkpoint(state, run_dir / ref)
    store.finish_node(root.id, NodeStatus.DONE, val_score=None, test_score=None, utility=None,
                      steps_trained=0, checkpoint=ref, checkpoint_sha256=sha)
    store.set_run_state(sid, RunState.CREATED, f"{kind} created for task {task.name}")
    store.add_event(sid, EventKind.CREATED, f"{kind} created for task {task.name}",
                    data={"info": info, "pid": os.getpid(), "host": socket.gethostname(),
                          **({"supervise": supervise} if supervise is not None else {})})


def create_run(config: SearchConfig, reporter: Reporter | None = None, task: Task | None = None) -> Coordinator:
    """Create a run directory for ``config`` atomically (:func:`searchmgr.rundir.create_run`): the task's root
    checkpoint and the fixed baseline's start; the returned coordinator owns the run until it is closed."""
    if config.out is not None:
        rundir.check_new(config.out)  # before the task builds its data
    config, task = resolve(config, task)
    run_dir = config.out or Path("runs") / f"{task.name}-{datetime.now():%Y%m%d-%H%M%S}"  # a plug-in's name
    config = config.model_copy(update={"out": run_dir})
    run = rundir.create_run(run_dir, lambda stage, store: build_root(stage, store, config, task),
                            Redactor.from_env(config.manager.api_key_env))
    row = run.store.search()
    coordinator = _coordinator(run, config, task, row["id"], reporter)
    for k, v in row["info"].items():
        coordinator.reporter.message(f"{k}: {v}")
    return coordinator


def resume_run(run_dir: Path, overrides: Mapping[str, Any] | None = None,
               reporter: Reporter | None = None, task: Task | None = None) -> Coordinator:
    """Reopen a run and own it (:func:`searchmgr.rundir.claim_run`); only budget, manager, stopper, uct,
    executor and checkpoint settings may change. Damaged checkpoints are repaired before training."""
    run = rundir.claim_run(Path(run_dir))
    try:
        return _resume(run, overrides, reporter, task)
    except BaseException:
        run.close()
        raise


def _resume(run: Run, overrides: Mapping[str, Any] | None, reporter: Reporter | None,
            task: Task | None) -> Coordinator:
    run_dir, store = run.path, run.store
    row = store.search()
    if store.supervision(row["id"]) is not None:  # a live run's chain is off the segment grid UCT grows on
        store.close()
        raise ConfigError(f"{run_dir} is a supervised run; continue it with `searchmgr supervise --resume {run_dir}`")
    stored = rundir.stored_config(row).model_dump(mode="json")
    overrides = dict(overrides or {})
    for key in FROZEN_KEYS:
        if key in overrides and key != "task_options" and overrides[key] != stored.get(key):
            raise ConfigError(f"resume cannot change {key} ({shorten(stored.get(key))} -> {shorten(overrides[key])}); "
                              "start a new run with out=<new dir> instead")
    changed_opts = {k: v for k, v in overrides.get("task_options", {}).items()
                    if stored["task_options"].get(k) != v}
    if changed_opts:
        raise ConfigError(f"resume cannot change task options {sorted(changed_opts)}; start a new run instead")
    new_policy = overrides.get("policy", {}).get("name")
    if new_policy is not None and new_policy != stored.get("policy", {}).get("name", "uct"):
        raise ConfigError(f"resume cannot change policy.name ({stored.get('policy', {}).get('name', 'uct')!r} -> "
                          f"{new_policy!r}); start a new run instead")
    if "out" in overrides and Path(overrides["out"]) != run_dir:
        raise ConfigError("resume keeps the run directory; drop out= or start a new run")
    config = build_config(merge(stored, {k: v for k, v in overrides.items() if k != "out"}))
    config = config.model_copy(update={"out": run_dir})
    config, task = resolve(config, task)
    if not task.surface.same_as(row["surface_fingerprint"]):
        raise ConfigError(
            f"the action surface of task {task.name} changed since this run was created "
            f"({task.surface.difference(row['surface'])}); resume refuses it because the stored recipes would no "
            "longer mean the same; start a new run")
    store.redact = Redactor.from_env(config.manager.api_key_env)
    store.update_search_config(row["id"], config.model_dump(mode="json"))
    (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    ids = store.interrupt_running(row["id"])
    if ids:
        store.add_event(row["id"], EventKind.INTERRUPTED, f"nodes {ids} were running when the process died")
    repaired = repair(store, run_dir, row["id"])
    coordinator = _coordinator(run, config, task, row["id"], reporter)
    if ids:
        coordinator.reporter.message(f"nodes {ids} were interrupted; they will be retrained")
    for line in repaired.lines():
        coordinator.reporter.message(line)
    changed = source_change(row["info"], task)
    if changed:
        coordinator.reporter.message(changed)
    owner = run.lock.previous
    store.set_run_state(row["id"], RunState.CREATED, "resumed")
    store.add_event(row["id"], EventKind.RESUMED, changed or "search resumed", data={
        "overrides": overrides, "pid": os.getpid(), "host": socket.gethostname(),
        "took_over_from": str(owner) if owner else None, "task_source": task.source.to_info()})
    return coordinator


def explore(overrides: Sequence[str] | Mapping[str, Any] = (), resume: str | Path | None = None,
            reporter: Reporter | None = None, on_start: Callable[[Path], None] | None = None,
            task: Task | None = None) -> Outcome:
    """Run (or continue) a search; the Python twin of ``searchmgr explore``.

    ``overrides`` are ``key=value`` words or an already nested mapping. With
    ``resume``, only budget, manager, stopper, uct, executor and checkpoint settings may change.
    ``on_start(run_dir)`` is called once the run's store exists, before training
    (``--serve`` starts the service there).
    ``task`` is a ready Task instance instead of ``task=<name or reference>``
    (resume re-imports its class, or takes the same instance again).
    """
    data = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    if task is not None:
        data["task"] = reference_of(task)
    with StopSignals() as signals:  # SIGTERM/SIGINT: a clean stop at the next safe point, from creation on
        if resume is not None:
            coordinator = resume_run(Path(resume), data, reporter, task)
        else:
            if data.get("manager", {}).get("name") == "replay" and data.get("manager", {}).get("replay"):
                from searchmgr.managers.replay import replay_config

                data = replay_config(data)  # the original run's task, seed, budget ...; overrides win
            if "task" not in data:
                raise ConfigError("which task? add task=<name>; see `searchmgr tasks`")
            coordinator = create_run(build_config(data), reporter, task)
        coordinator.signals = signals
        try:
            if on_start is not None:
                on_start(coordinator.run_dir)
            return coordinator.run()
        except KeyboardInterrupt:  # a second signal: stop now; the store's transactions keep it consistent
            ids = coordinator.interrupt()
            why = f"stopped at once by {signals.received or 'SIGINT'}; nodes {ids} interrupted"
            coordinator.store.add_event(coordinator.search_id, EventKind.INTERRUPTED, why)
            coordinator.store.set_run_state(coordinator.search_id, RunState.STOPPED, why)
            raise
        except Exception as e:
            record_failure(coordinator.store, coordinator.search_id, e)
            raise
        finally:
            coordinator.close()


def record_failure(store: TreeStore, search_id: int, error: Exception) -> None:
    """The owner ends on an error: the nodes it was training become interrupted (``--resume`` retrains them) and
    the run's state says failed, with why. When the store cannot take it either (a full disk), the error says so."""
    try:
        ids = store.interrupt_running(search_id)
        if ids:
            store.add_event(search_id, EventKind.INTERRUPTED, f"nodes {ids} interrupted: {type(error).__name__}")
        store.set_run_state(search_id, RunState.FAILED, f"{type(error).__name__}: {error}")
    except (StoreError, DiskFull, sqlite3.Error) as e:
        error.add_note(f"(the run's state could not be recorded: {e}; readers show it as interrupted)")

