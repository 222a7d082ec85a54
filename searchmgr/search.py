"""Starting and continuing searches: build the task, create or reopen the run, hand over to the coordinator.

The store is the single source of truth: the coordinator (:mod:`searchmgr.coordinator`)
reads the tree from it and writes every result back in one transaction, so a killed
process loses at most the segments that were running, and :func:`resume_run` continues
where it stopped. Every search first grows the fixed path (the base recipe held for
every segment) to the full horizon, so it measures itself against its own fixed
baseline; then UCT with virtual-child expansion decides (:mod:`searchmgr.policy`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from searchmgr import tree as T
from searchmgr.config import FROZEN_KEYS, ConfigError, SearchConfig, build_config, merge, parse_overrides
from searchmgr.coordinator import Coordinator
from searchmgr.executors import ExecutorUnavailable, TaskSpec
from searchmgr.outcome import Outcome
from searchmgr.progress import Reporter
from searchmgr.store import NodeStatus, TreeStore, save_checkpoint
from searchmgr.tasks import Task, TaskOptionsError, UnknownTask, make_task, task_class

DB_NAME = "tree.db"
CONFIG_NAME = "config.json"


class RunNotFound(FileNotFoundError):
    def __str__(self) -> str:
        return f"{self.args[0]} is not a run directory (no {DB_NAME}); give the out= of an earlier explore"


def resolve(config: SearchConfig) -> tuple[SearchConfig, Task]:
    """Build the task and fill the config's defaults from it; raise :class:`ConfigError` on any problem."""
    try:
        cls = task_class(config.task)
    except UnknownTask as e:
        raise ConfigError(str(e)) from None
    unknown = sorted(set(config.task_options) - set(cls.Options.model_fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown}: not a search key ({sorted(k for k in SearchConfig.model_fields if k != 'task_options')}, "
            f"or a section field like budget.steps) nor an option of task {config.task} "
            f"({sorted(cls.Options.model_fields)})")
    try:
        task = make_task(config.task, config.task_options)
    except (UnknownTask, TaskOptionsError) as e:
        raise ConfigError(str(e)) from None
    unknown = sorted(set(config.policy.grid) - set(task.surface.names))
    if unknown:
        raise ConfigError(f"grid knob(s) {unknown} are not knobs of task {task.name}; its knobs are "
                          f"{task.surface.names}")
    d = task.search_defaults()
    budget = config.budget.model_copy(update={"steps": config.budget.steps or d.budget_steps})
    config = config.model_copy(update={
        "segment_steps": config.segment_steps or d.segment_steps,
        "max_depth": config.max_depth or d.max_depth,
        "eval_every": config.eval_every or d.eval_every,
        "budget": budget,
        "task_options": task.options.model_dump(mode="json"),
    })
    config = build_config(config.model_dump(mode="json"))
    config.check_resolved()
    return config, task


def _coordinator(run_dir: Path, config: SearchConfig, task: Task, store: TreeStore, search_id: int,
                 reporter: Reporter | None) -> Coordinator:
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    try:
        return Coordinator(run_dir, config, task, TaskSpec(config.task, config.task_options), store, search_id,
                           reporter)
    except ExecutorUnavailable as e:
        store.close()
        raise ConfigError(str(e)) from None


def create_run(config: SearchConfig, reporter: Reporter | None = None) -> Coordinator:
    """Create a run directory for ``config``: the task's root checkpoint and the fixed baseline's start."""
    config, task = resolve(config)
    run_dir = config.out or Path("runs") / f"{config.task}-{datetime.now():%Y%m%d-%H%M%S}"
    if (run_dir / DB_NAME).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with `searchmgr explore --resume "
                          f"{run_dir}` or choose another out=")
    config = config.model_copy(update={"out": run_dir})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    store = TreeStore(run_dir / DB_NAME)
    info = task.info()
    sid = store.create_search(task.name, config.model_dump(mode="json"), task.surface.describe(),
                              task.surface.fingerprint(), info)
    coordinator = _coordinator(run_dir, config, task, store, sid, reporter)
    for k, v in info.items():
        coordinator.reporter.message(f"{k}: {v}")
    # the root: the untrained model, the base recipe
    state = task.init(config.seed)
    root = store.add_node(sid, None, 0, 0, 0, task.base_recipe(), T.ROOT, status=NodeStatus.RUNNING)
    ref = f"checkpoints/node_{root.id:05d}.pt"
    sha = save_checkpoint(state, run_dir / ref)
    store.finish_node(root.id, NodeStatus.DONE, val_score=None, test_score=None, utility=None,
                      steps_trained=0, checkpoint=ref, checkpoint_sha256=sha)
    store.add_event(sid, "created", f"run created for task {task.name}", data={"info": info})
    return coordinator


def resume_run(run_dir: Path, overrides: Mapping[str, Any] | None = None,
           reporter: Reporter | None = None) -> Coordinator:
    """Reopen a run; only budget, manager, stopper, uct, executor and checkpoint settings may change."""
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).exists():
        raise RunNotFound(run_dir)
    store = TreeStore(run_dir / DB_NAME)
    row = store.search()
    stored = row["config"]
    overrides = dict(overrides or {})
    for key in FROZEN_KEYS:
        if key in overrides and key != "task_options" and overrides[key] != stored.get(key):
            raise ConfigError(f"resume cannot change {key} ({stored.get(key)!r} -> {overrides[key]!r}); "
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
    config, task = resolve(config)
    if task.surface.fingerprint() != row["surface_fingerprint"]:
        raise ConfigError(
            f"the action surface of task {task.name} changed since this run was created "
            f"({row['surface_fingerprint']} -> {task.surface.fingerprint()}); resume refuses it because the "
            "stored recipes would no longer mean the same; start a new run")
    store.update_search_config(row["id"], config.model_dump(mode="json"))
    (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
    coordinator = _coordinator(run_dir, config, task, store, row["id"], reporter)
    ids = store.interrupt_running(row["id"])
    if ids:
        store.add_event(row["id"], "interrupted", f"nodes {ids} were running when the process died")
        coordinator.reporter.message(f"nodes {ids} were interrupted; they will be retrained")
    store.add_event(row["id"], "resumed", "search resumed", data={"overrides": overrides})
    return coordinator


def explore(overrides: Sequence[str] | Mapping[str, Any] = (), resume: str | Path | None = None,
            reporter: Reporter | None = None) -> Outcome:
    """Run (or continue) a search; the Python twin of ``searchmgr explore``.

    ``overrides`` are ``key=value`` words or an already nested mapping. With
    ``resume``, only budget, manager, stopper, uct, executor and checkpoint settings may change.
    """
    data = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    if resume is not None:
        coordinator = resume_run(Path(resume), data, reporter)
    else:
        if data.get("manager", {}).get("name") == "replay" and data.get("manager", {}).get("replay"):
            from searchmgr.managers.replay import replay_config

            data = replay_config(data)  # the original run's task, seed, budget ...; overrides win
        if "task" not in data:
            raise ConfigError("which task? add task=<name>; see `searchmgr tasks`")
        coordinator = create_run(build_config(data), reporter)
    try:
        return coordinator.run()
    except KeyboardInterrupt:
        ids = coordinator.interrupt()
        coordinator.store.add_event(coordinator.search_id, "interrupted",
                                    f"stopped by the user; nodes {ids} interrupted")
        raise
    finally:
        coordinator.close()

