"""``searchmgr supervise``: one live training run, steered asynchronously by a manager (AI Training Manager).

The run trains the task's horizon (``max_depth x segment_steps`` steps) once. Training
advances in chunks that end at *safe boundaries*, every ``eval_every`` steps (for RL
tasks one step is one PPO update, so a boundary is always an update boundary); each
chunk is one ``task.train_segment`` call from the previous chunk's checkpoint and ends
with an evaluation.

- **Ask**: at the first boundary at or after each multiple of ``interval`` steps the
  supervisor snapshots the telemetry and the recipe version (the number of decisions
  applied so far) and asks the manager. Slow managers (LLMs) are asked on a worker
  thread while training goes on; offline managers answer at once, at the same boundary.
- **Verify**: every answer goes through :func:`searchmgr.decision.verify` (in the
  worker, by :func:`searchmgr.attempts.run_attempts` as for searches, with the
  verifier's feedback on rejected attempts).
- **Apply**: at each boundary, answers that have arrived are checked for staleness
  (the recipe changed since their snapshot, or more than ``stale_steps`` steps passed)
  and an admitted, fresh answer that changes the recipe is applied there: the running
  segment ends at that boundary (checkpoint saved) and a child segment with the new
  recipe starts. Stale, rejected and failed answers are traced and change nothing.

The store is the one ``explore`` writes: the root, then a chain of segments split where
decisions were applied (with ``baseline=true``, the fixed recipe's path first, as a
search trains it), metrics, and one decision trace per answer with its snapshot step,
recipe version, latency, verdict (``stale`` included) and applied step. So ``show``,
``show --decisions``, ``report``, ``export`` and ``replay`` read it as they read a
search, and ``supervise --resume`` continues a killed run: the segment that was training
is retrained from its parent's checkpoint; requests in flight when it died are lost.

Only this module's thread writes the store; workers only call the manager and the verifier.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.attempts import Attempt, run_attempts
from searchmgr.commands import HUMAN, NOTE_MAX_CHARS, pause_or_resume, settle_moot, verify_change
from searchmgr.config import ConfigError, SearchConfig, build_config, merge, parse_overrides
from searchmgr.decision import Decision
from searchmgr.errors import SearchmgrError
from searchmgr.managers import Manager, PathStep, ProposalContext, manager_class
from searchmgr.progress import Reporter
from searchmgr.recorder import Recorder, Trace
from searchmgr import rundir
from searchmgr.rundir import CONFIG_NAME, DB_NAME, RunLock, checkpoint_ref
from searchmgr.sanitize import Redactor, fmt
from searchmgr.search import build_root, resolve
from searchmgr.signals import StopSignals
from searchmgr.store import (
    CommandKind, CommandRecord, CommandStatus, DecisionKind, DecisionVerdict, EventKind, Node, NodeStatus, RunState,
    TreeStore, load_checkpoint, roundtrip, save_checkpoint,
)
from searchmgr.surface import same_recipe
from searchmgr.tasks import Segment, Task
from searchmgr.telemetry import summarize

class SuperviseSettings(BaseModel):
    """How the manager steers the live run (``key=value`` words of ``searchmgr supervise``)."""

    model_config = ConfigDict(extra="forbid")

    interval: int | None = Field(None, ge=0, description="steps between manager requests (default: the task's "
                                 "segment_steps; 0: never ask, the base recipe trains live)")
    stale_steps: int | None = Field(None, ge=1, description="an answer whose snapshot is older than this many steps "
                                    "when it could be applied is stale (default: 2 x max(interval, eval_every))")
    in_flight: int = Field(2, ge=1, le=8, description="most requests pending at once; a boundary that finds this "
                                                      "many asks nothing")
    baseline: bool = Field(False, description="first train the fixed recipe to the horizon, as a search does, so "
                           "show and report compare the run with it")

    def resolved(self, config: SearchConfig) -> "SuperviseSettings":
        interval = config.segment_steps if self.interval is None else self.interval
        stale = self.stale_steps or 2 * max(interval, config.eval_every)
        return self.model_copy(update={"interval": interval, "stale_steps": stale})


SETTING_KEYS = tuple(SuperviseSettings.model_fields)
PAUSE_POLL_S = 0.5  # how often a paused run looks for a resume or stop command
# a supervised run trains its horizon once, inline: nothing to budget, select, prune, parallelise or retain
IGNORED_SECTIONS = ("budget", "uct", "stopper", "policy", "executor", "checkpoints")


def split_words(words: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``key=value`` words -> (supervise settings, search overrides); raises :class:`ConfigError`."""
    settings, rest = {}, []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key.strip() in SETTING_KEYS:
            settings[key.strip()] = value
        else:
            rest.append(word)
    overrides = parse_overrides(rest)
    ignored = [k for k in IGNORED_SECTIONS if k in overrides]
    if ignored:
        raise ConfigError(f"supervise trains one run to the horizon (max_depth x segment_steps), inline, without "
                          f"budget, policy, early stopping or checkpoint retention; drop the {'/'.join(ignored)} "
                          "settings")
    return settings, overrides


def parse_settings(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> SuperviseSettings:
    try:
        return SuperviseSettings.model_validate({**(base or {}), **data})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"bad supervise setting: {problems} (keys: {', '.join(SETTING_KEYS)})") from None


@dataclass
class Pending:
    """A request on its way: what it was built from, and its future (the attempts, verified)."""

    future: Future
    node_id: int  # the segment training when it was asked
    snapshot_step: int
    version: int
    context: dict


@dataclass(frozen=True)
class SuperviseOutcome:
    run_dir: Path
    metric: str
    chain: tuple[Node, ...]  # the supervised segments, first first
    fixed: Node | None  # the fixed recipe's last segment (baseline=true)
    best_val: float | None  # the best evaluation of the supervised run
    best_step: int | None
    verdicts: dict[str, int]  # answers by verdict
    applied: int
    wall_s: float
    train_s: float
    stop_reason: str
    stopped: bool = False  # by a command or a signal, at a boundary; ``supervise --resume`` continues it
    exit_status: int = 0  # the command line's: 128 + N when signal N stopped it

    @property
    def final(self) -> Node | None:
        return self.chain[-1] if self.chain else None

    @property
    def overhead_share(self) -> float:
        return 0.0 if self.wall_s <= 0 else max(self.wall_s - self.train_s, 0.0) / self.wall_s

    def render(self) -> str:
        lines = [f"supervised run: {self.stop_reason}",
                 f"wall {self.wall_s:.1f}s, outside training {100 * self.overhead_share:.1f}%; answers "
                 + (", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "none")
                 + f"; {self.applied} applied"]
        if self.final is not None:
            lines.append(f"final {self.metric}={fmt(self.final.val_score)} (test {fmt(self.final.test_score)}), "
                         f"best on the way {fmt(self.best_val)} at step {self.best_step}")
            for n in self.chain:
                lines.append(f"  steps {n.start_step:>6}-{n.end_step:<6} node {n.id:<4} {n.source:<10} "
                             + " ".join(f"{k}={v:.3g}" for k, v in n.recipe.items()))
        if self.fixed is not None:
            lines.append(f"fixed recipe {self.metric}={fmt(self.fixed.val_score)} (test {fmt(self.fixed.test_score)})")
        lines.append(f"run: {self.run_dir}")
        if self.stopped:
            lines.append(f"continue with `searchmgr supervise --resume {self.run_dir}`")
        return "\n".join(lines)


class TrainingFailed(SearchmgrError, RuntimeError):
    """A chunk raised or diverged; the segment is recorded as failed and the run stops."""


class Stopped(Exception):
    """A stop command or a signal, applied at a boundary: the segment ended there, ``--resume`` continues."""


class Supervisor:
    """One supervised run bound to a run directory: :meth:`create` or :meth:`resume`, then :meth:`run`."""

    def __init__(self, run_dir: Path, config: SearchConfig, settings: SuperviseSettings, task: Task,
                 store: TreeStore, search_id: int, reporter: Reporter | None = None, owner: RunLock | None = None):
        self.run_dir, self.config, self.settings, self.task = run_dir, config, settings, task
        self.store, self.search_id, self.owner = store, search_id, owner  # the run's lock, released by close()
        self.signals = StopSignals()  # supervise() installs its handlers: SIGTERM/SIGINT stop at the next boundary
        self.stopping: str | None = None  # why the run stops at its next boundary (a stop command, a signal)
        self.reporter = reporter or Reporter()
        if config.threads:
            torch.set_num_threads(config.threads)
        self.manager: Manager = manager_class(config.manager.name).from_config(config)
        self.asynchronous = self.manager.slow  # LLMs answer on a worker thread; offline managers at once
        self.pool = ThreadPoolExecutor(settings.in_flight, thread_name_prefix="searchmgr-supervise") \
            if self.asynchronous else None
        self.recorder = Recorder(store, search_id)
        self.pending: list[Pending] = []
        self.train_s = 0.0
        self.reporter.start(task.objective.metric, config.budget.steps)

    # construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, words: Sequence[str], reporter: Reporter | None = None) -> "Supervisor":
        raw_settings, overrides = split_words(words)
        if "task" not in overrides:
            raise ConfigError("which task? add task=<name>; see `searchmgr tasks`")
        config, task = resolve(build_config(overrides))
        settings = parse_settings(raw_settings).resolved(config)
        steps = config.horizon * (2 if settings.baseline else 1)
        config = config.model_copy(update={"budget": config.budget.model_copy(update={"steps": steps})})
        run_dir = config.out or Path("runs") / f"{config.task}-supervised-{datetime.now():%Y%m%d-%H%M%S}"
        if (run_dir / DB_NAME).exists():
            raise ConfigError(f"{run_dir} already holds a run; continue it with `searchmgr supervise --resume "
                              f"{run_dir}` or choose another out=")
        config = config.model_copy(update={"out": run_dir})

        def build(stage: Path, store: TreeStore) -> None:
            build_root(stage, store, config, task, kind="supervised run", supervise=settings.model_dump())

        run = rundir.create_run(run_dir, build, Redactor.from_env(config.manager.api_key_env))
        row = run.store.search()
        sup = cls(run.path, config, settings, task, run.store, row["id"], reporter, owner=run.lock)
        for k, v in row["info"].items():
            sup.reporter.message(f"{k}: {v}")
        return sup

    @classmethod
    def resume(cls, run_dir: Path, words: Sequence[str] = (), reporter: Reporter | None = None) -> "Supervisor":
        """Continue a supervised run; manager settings and supervise settings may change, nothing else."""
        run_dir = Path(run_dir)
        raw_settings, overrides = split_words(words)
        other = sorted(k for k in overrides if k != "manager")
        if other:
            raise ConfigError(f"supervise --resume may change manager.* and {', '.join(SETTING_KEYS)} only, not "
                              f"{other}; start a new run with out=<new dir> instead")
        run = rundir.claim_run(run_dir)  # one owner at a time: a second resume is refused, naming the first
        store = run.store
        try:
            row = store.search()
            stored = store.supervision(row["id"])
            if stored is None:
                raise ConfigError(f"{run_dir} is a search, not a supervised run; continue it with "
                                  f"`searchmgr explore --resume {run_dir}`")
            config, task = resolve(build_config(merge(row["config"], overrides)))
            if not task.surface.same_as(row["surface_fingerprint"]):
                raise ConfigError(f"the action surface of task {task.name} changed since this run was created "
                                  f"({task.surface.difference(row['surface'])}); resume refuses it because the "
                                  "stored recipes would no longer mean the same")
            settings = parse_settings(raw_settings, stored).resolved(config)
            if settings.baseline != stored["baseline"]:
                raise ConfigError("resume cannot change baseline; start a new run instead")
        except BaseException:
            run.close()
            raise
        store.redact = Redactor.from_env(config.manager.api_key_env)
        store.update_search_config(row["id"], config.model_dump(mode="json"))
        store.set_supervision(row["id"], settings.model_dump())
        (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
        sup = cls(run_dir, config, settings, task, store, row["id"], reporter, owner=run.lock)
        ids = store.interrupt_running(row["id"])
        if ids:
            store.add_event(row["id"], EventKind.INTERRUPTED, f"nodes {ids} were running when the process died")
            sup.reporter.message(f"node(s) {ids} were interrupted; retraining from the parent's checkpoint")
        store.set_run_state(row["id"], RunState.CREATED, "resumed")
        store.add_event(row["id"], EventKind.RESUMED, "supervised run resumed",
                        data={"overrides": overrides, "supervise": settings.model_dump()})
        return sup

    # checkpoints -------------------------------------------------------------------------
    def _save(self, node_id: int, state: dict) -> tuple[str, str]:
        ref = checkpoint_ref(node_id)
        return ref, save_checkpoint(state, self.run_dir / ref)

    def _load(self, node: Node) -> dict:
        return load_checkpoint(self.run_dir / node.checkpoint, node.checkpoint_sha256)

    # the run -------------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        return self.config.horizon

    def run(self) -> SuperviseOutcome:
        started = time.perf_counter()
        reason, state = "trained to the horizon", RunState.FINISHED
        self.store.set_run_state(self.search_id, RunState.RUNNING)
        try:
            if self.settings.baseline:
                self._continue(self._tip(fixed=True), steer=False)
            self._continue(self._tip(fixed=False), steer=True)
        except TrainingFailed as e:
            reason, state = f"stopped: {e}", RunState.FAILED
        except Stopped as e:
            reason, state = str(e), RunState.STOPPED
        finally:
            self._drop_pending("the run ended before it could be applied")
        outcome = self._outcome(reason, time.perf_counter() - started, state)
        self.store.set_run_state(self.search_id, state, reason)
        return outcome

    def _tip(self, fixed: bool) -> Node:
        """The last segment of the fixed path or of the supervised chain, created when missing."""
        nodes = self.store.nodes(self.search_id)
        root = T.root(nodes)
        if fixed:
            tip = T.fixed_path(nodes)[-1]
            if tip.id == root.id:
                return self._fixed_child(root)
            return tip
        chain = [n for n in nodes if n.source not in (T.ROOT, T.FIXED)]
        if chain:
            return chain[-1]
        return self.store.add_node(self.search_id, root.id, 1, 0, self.horizon, root.recipe, T.SUPERVISED)

    def _fixed_child(self, parent: Node) -> Node:
        decision = Decision.hold(self.task.surface, "fixed baseline: hold the base recipe")
        did = self.recorder.record(Trace(DecisionKind.MANAGER, T.FIXED, parent.id, DecisionVerdict.ACCEPTED,
                                         parsed=decision.model_dump()))
        end = min(parent.end_step + self.config.segment_steps, self.horizon)
        return self.store.add_node(self.search_id, parent.id, parent.depth + 1, parent.end_step, end,
                                   parent.recipe, T.FIXED, did)

    def _continue(self, node: Node, steer: bool) -> None:
        """Train from ``node`` to the horizon: split where decisions are applied (``steer``) or at the end of
        each fixed segment."""
        if node.status is NodeStatus.FAILED:
            raise TrainingFailed(f"node {node.id} failed earlier ({node.error}); start a new run")
        if node.status is NodeStatus.DONE:
            if node.end_step >= self.horizon:
                return
            # a fixed segment done before the horizon, or a chain segment a stop ended at a boundary
            node = self._fixed_child(node) if node.source == T.FIXED else self._carry_on(node)
        parent = self.store.node(node.parent_id)
        state = self._load(parent)
        self.store.start_node(node.id)
        self.reporter.node_started(node, node.source, None)
        step = node.start_step
        next_ask = self._next_multiple(step)
        while True:
            boundary = min((step // self.config.eval_every + 1) * self.config.eval_every, node.end_step)
            state, metrics = self._chunk(node, state, step, boundary)
            step = boundary
            if step == node.end_step:
                self._finish(node, step, state, metrics)
                if step >= self.horizon:
                    return
                node = self._fixed_child(self.store.node(node.id))
                self.store.start_node(node.id)
                self.reporter.node_started(node, node.source, None)
                continue
            node = self._boundary(node, step, state, metrics, steer)
            if not steer:
                continue
            node = self._apply_answers(node, step, state, metrics)
            if self.settings.interval and step >= next_ask:
                next_ask = self._next_multiple(step)
                self._ask(node, step)
                if not self.asynchronous:
                    node = self._apply_answers(node, step, state, metrics)

    def _carry_on(self, node: Node) -> Node:
        """The chain's next segment after a stop ended ``node`` at a boundary: the same recipe to the horizon."""
        return self.store.add_node(self.search_id, node.id, node.depth + 1, node.end_step, self.horizon,
                                   node.recipe, node.source)

    # a person's commands, at each boundary ----------------------------------------------------
    def _boundary(self, node: Node, step: int, state: dict, metrics: dict[str, float], steer: bool) -> Node:
        """Apply the queued commands here (pause waits here, polling); a stop or a signal ends ``node`` at this
        boundary (checkpoint saved) and raises :class:`Stopped`."""
        waited = False
        while True:
            for cmd in self.store.commands(self.search_id, CommandStatus.QUEUED):
                if self.stopping:
                    settle_moot(self.store, self.search_id, f"the run is stopping ({self.stopping})")
                    break
                status, result, node = self._command(cmd, node, step, state, metrics, steer)
                self.store.settle_command(cmd.id, status, result, node.id if cmd.kind is CommandKind.CHILD
                                          and status is CommandStatus.APPLIED else None)
                self.reporter.message(f"command {cmd.id} ({cmd.kind.value}) {status.value}: {result}")
            self.stopping = self.stopping or self.signals.reason()
            if self.stopping:
                self.store.set_run_state(self.search_id, RunState.STOPPING, self.stopping)
                self._finish(node, step, state, metrics)
                raise Stopped(f"{self.stopping} at step {step}")
            if self.store.run_state(self.search_id)[0] is not RunState.PAUSED:
                return node
            if not waited:
                self.reporter.message(f"paused at step {step}: waiting for a resume or stop command")
                waited = True
            time.sleep(PAUSE_POLL_S)

    def _command(self, cmd: CommandRecord, node: Node, step: int, state: dict, metrics: dict[str, float],
                 steer: bool) -> tuple[CommandStatus, str, Node]:
        """One command at a boundary: ``(status, what happened, the segment training now)``."""
        if cmd.kind in (CommandKind.PAUSE, CommandKind.RESUME):
            return *pause_or_resume(self.store, self.search_id, cmd, at=f" at step {step}", node_id=node.id), node
        if cmd.kind is CommandKind.STOP:
            self.stopping = f"stopped by command {cmd.id}"
            return CommandStatus.APPLIED, f"the run stops at step {step}", node
        if cmd.kind is CommandKind.CHILD and steer:
            return self._human_change(cmd, node, step, state, metrics)
        why = {CommandKind.CLOSE: "a supervised run has no subtree to close",
               CommandKind.CHILD: "the fixed baseline trains first; a recipe change applies to the supervised "
                                  "chain after it"}[cmd.kind]
        return CommandStatus.REJECTED, why, node

    def _human_change(self, cmd: CommandRecord, node: Node, step: int, state: dict,
                      metrics: dict[str, float]) -> tuple[CommandStatus, str, Node]:
        """A person's recipe for the segment in training, through the verifier; traced like the manager's."""
        payload = cmd.payload if isinstance(cmd.payload, dict) else {}
        recipe, note = payload.get("recipe"), payload.get("note") or ""
        if not isinstance(recipe, dict) or not isinstance(note, str):
            return CommandStatus.REJECTED, "the command holds no recipe object", node
        verdict, reasons = verify_change(self.task.surface, node.recipe, recipe, note)
        context = {"command_id": cmd.id, "note": note[:NOTE_MAX_CHARS], "requested": recipe, "asked_of": cmd.node_id}
        recorded = DecisionVerdict.ACCEPTED if verdict.ok else DecisionVerdict.REJECTED
        trace = Trace(DecisionKind.MANAGER, HUMAN, node.id, recorded,
                      reason=None if verdict.ok else "; ".join(reasons), context=context,
                      parsed=verdict.decision.model_dump() if verdict.decision else None,
                      rejection=None if verdict.ok else verdict.rejection.kind.value, snapshot_step=step,
                      recipe_version=node.depth - 1, applied_step=step if verdict.ok else None)
        if not verdict.ok:
            self.recorder.record(trace)
            return CommandStatus.REJECTED, "; ".join(reasons), node
        if same_recipe(verdict.recipe, node.recipe):
            self.recorder.record(dataclasses.replace(trace, applied_step=None, reason="it holds every knob"))
            return CommandStatus.APPLIED, "it holds every knob: nothing changes", node
        child = self._branch(node, step, state, metrics, verdict.recipe, HUMAN, lambda: self.recorder.record(trace))
        self.reporter.node_started(child, HUMAN, verdict.decision.diagnosis)
        return CommandStatus.APPLIED, f"node {child.id} trains it from step {step}", child

    def _next_multiple(self, step: int) -> int:
        interval = self.settings.interval
        return (step // interval + 1) * interval if interval else self.horizon + 1

    def _chunk(self, node: Node, state: dict, start: int, end: int) -> tuple[dict, dict[str, float]]:
        """Train ``node``'s recipe from ``start`` to the boundary ``end``; the next checkpoint and the metrics."""
        callback_s = 0.0

        def on_eval(step: int, metrics: dict[str, float]) -> bool:
            nonlocal callback_s
            t0 = time.perf_counter()
            self.store.add_metrics(node.id, step, metrics, step - node.start_step)
            self.reporter.evaluated(node, step, metrics, self._steps_used() + step - node.start_step)
            callback_s += time.perf_counter() - t0
            return False

        segment = Segment(start, end - start, self.horizon, self.config.eval_every)
        t0 = time.perf_counter()
        try:
            result = self.task.train_segment(state, node.recipe, segment, on_eval)
        except Exception as e:  # recorded on the node and in the log, then the run stops
            self.train_s += time.perf_counter() - t0 - callback_s
            self._fail(node, start, f"{type(e).__name__}: {e}", traceback.format_exc())
            raise TrainingFailed(f"node {node.id} failed at step {start}: {type(e).__name__}: {e}") from None
        self.train_s += time.perf_counter() - t0 - callback_s
        value = result.metrics.get(self.task.objective.metric)
        if value is None or not math.isfinite(value) or result.checkpoint is None:
            self._fail(node, end, f"diverged: {self.task.objective.metric}={value} at step {end}", None)
            raise TrainingFailed(f"node {node.id} diverged at step {end}")
        return roundtrip(result.checkpoint, map_location=None), dict(result.metrics)  # stays on its device

    def _steps_used(self) -> int:
        return T.steps_used(self.store.nodes(self.search_id))

    # ending segments ---------------------------------------------------------------------------
    def _backup(self, node_id: int, utility: float) -> dict[int, tuple[int, float]]:
        views = [uct.NodeView(id=n.id, parent=n.parent_id, depth=n.depth, expandable=False, utility=n.utility,
                              visits=n.visits, value_sum=n.value_sum) for n in self.store.nodes(self.search_id)]
        return uct.backup(uct.TreeView.build(views), node_id, utility)

    def _finish(self, node: Node, step: int, state: dict, metrics: dict[str, float]) -> None:
        """End ``node`` at ``step`` (done, checkpoint saved unless at the horizon) with its UCT backup."""
        objective = self.task.objective
        utility = objective.search_utility(metrics)
        ref = sha = None
        if step < self.horizon:
            ref, sha = self._save(node.id, state)
        self.store.finish_node(node.id, NodeStatus.DONE, val_score=metrics.get(objective.metric),
                               test_score=metrics.get(objective.test_metric), utility=utility,
                               steps_trained=step - node.start_step, train_s=None, checkpoint=ref,
                               checkpoint_sha256=sha, backup=self._backup(node.id, utility), end_step=step)
        self.reporter.node_finished(self.store.node(node.id), None, self._steps_used(),
                                    sum(n.depth > 0 and n.status.finished for n in self.store.nodes(self.search_id)))

    def _fail(self, node: Node, step: int, error: str, trace: str | None) -> None:
        self.store.add_event(self.search_id, EventKind.FAILED, error, node_id=node.id,
                             data={"traceback": trace} if trace else None)
        self.store.finish_node(node.id, NodeStatus.FAILED, val_score=None, test_score=None, utility=None,
                               steps_trained=step - node.start_step, error=error)
        self.reporter.node_finished(self.store.node(node.id), None, self._steps_used(), 0)

    # asking and applying ------------------------------------------------------------------------
    def _context(self, node: Node, step: int) -> ProposalContext:
        """The snapshot: ``node``'s path and telemetry up to ``step``, as the parent of the next segment."""
        nodes = self.store.nodes(self.search_id)
        history: list[tuple[int, dict[str, float]]] = []
        steps = []
        for n in T.path_to(nodes, node.id)[1:]:
            m = self.store.metrics(n.id)
            history += m
            decision = self.store.decision(n.decision_id).parsed if n.decision_id else None
            steps.append(PathStep(n.id, n.depth, n.start_step, min(n.end_step, step), n.recipe, n.val_score,
                                  decision, m[-1][1] if m else {}))
        return ProposalContext(
            task=self.task.name, family=self.task.family, description=self.task.description,
            objective=self.task.objective, surface=self.task.surface, parent_id=node.id,
            parent_recipe=node.recipe, depth=node.depth + 1, max_depth=max(self.config.max_depth, node.depth + 1),
            start_step=step, end_step=self.horizon, telemetry=summarize(history, self.task.objective),
            path=tuple(steps), siblings=(), budget_left_steps=self.horizon - step, seed=self.config.seed)

    def _ask(self, node: Node, step: int) -> None:
        version = node.depth - 1  # decisions applied along the chain so far
        if len(self.pending) >= self.settings.in_flight:
            self.store.add_event(self.search_id, EventKind.SKIPPED, f"no request at step {step}: "
                                 f"{len(self.pending)} still pending", node_id=node.id)
            return
        ctx = self._context(node, step)
        attempts = self.config.manager.attempts
        if self.pool is not None:
            future = self.pool.submit(run_attempts, self.manager, ctx, attempts)
        else:
            future = Future()
            future.set_result(run_attempts(self.manager, ctx, attempts))
        self.pending.append(Pending(future, node.id, step, version, ctx.to_dict()))

    def _apply_answers(self, node: Node, step: int, state: dict, metrics: dict[str, float]) -> Node:
        """Trace every answer that has arrived; apply the first admitted, fresh one that changes the recipe."""
        for p in [p for p in self.pending if p.future.done()]:
            self.pending.remove(p)
            *earlier, last = p.future.result()
            for n, a in enumerate(earlier):
                self._trace(p, a, n)
            n = len(earlier)
            version = node.depth - 1
            if last.proposal is None or not last.verdict.ok:
                self._trace(p, last, n)
                self.reporter.rejected(p.node_id, self.manager.name, last.error or str(last.verdict.rejection))
            elif p.version != version:
                self._trace(p, last, n, DecisionVerdict.STALE, f"stale: the recipe changed since the snapshot at step "
                            f"{p.snapshot_step} (version {p.version} -> {version}); the verifier had admitted it")
            elif step - p.snapshot_step > self.settings.stale_steps:
                self._trace(p, last, n, DecisionVerdict.STALE, f"stale: {step - p.snapshot_step} steps since the "
                            f"snapshot at step {p.snapshot_step} (limit stale_steps={self.settings.stale_steps}); the "
                            "verifier had admitted it")
            elif same_recipe(last.verdict.recipe, node.recipe):
                self._trace(p, last, n, DecisionVerdict.ACCEPTED, "admitted; it holds every knob, so nothing changes")
            else:
                node = self._split(node, step, state, metrics, p, last, n)
        return node

    def _trace(self, p: Pending, a: Attempt, attempt: int, verdict: DecisionVerdict | None = None,
               reason: str | None = None, applied_step: int | None = None) -> int:
        """Record one attempt of a request with its snapshot; ``verdict`` and ``reason`` override the verifier's
        (stale answers, admitted holds)."""
        trace = Trace.of_attempt(a, attempt, self.manager.name, p.node_id, p.context)
        if verdict is not None:
            trace = dataclasses.replace(trace, verdict=verdict, reason=reason)
        return self.recorder.record(dataclasses.replace(trace, snapshot_step=p.snapshot_step, recipe_version=p.version,
                                                        applied_step=applied_step))

    def _split(self, node: Node, step: int, state: dict, metrics: dict[str, float], p: Pending, a: Attempt,
               attempt: int) -> Node:
        """Apply an admitted answer at ``step``: ``node`` ends here and its child trains the new recipe."""
        child = self._branch(node, step, state, metrics, a.verdict.recipe, self.manager.name,
                             lambda: self._trace(p, a, attempt, applied_step=step))
        self.reporter.node_started(child, child.source, a.verdict.decision.diagnosis)
        return child

    def _branch(self, node: Node, step: int, state: dict, metrics: dict[str, float], recipe: dict, source: str,
                trace: Callable[[], int]) -> Node:
        """``node`` ends at ``step`` and its child trains ``recipe``; the segment's end, the decision (``trace``)
        and the child commit together."""
        with self.store.atomic():
            self._finish(node, step, state, metrics)
            child = self.store.add_node(self.search_id, node.id, node.depth + 1, step, self.horizon, recipe,
                                        source, trace())
            self.store.start_node(child.id)
        return self.store.node(child.id)

    def _drop_pending(self, why: str) -> None:
        for p in self.pending:
            p.future.cancel()
            if p.future.done() and not p.future.cancelled():
                for n, a in enumerate(p.future.result()):
                    said = "admitted" if a.proposal is not None and a.verdict.ok else "rejected"
                    self._trace(p, a, n, DecisionVerdict.STALE, f"stale: {why}; the verifier had {said} it"
                                if a.proposal is not None else f"stale: {why}; manager error: {a.error}")
            else:
                self.recorder.record(Trace(DecisionKind.MANAGER, self.manager.name, p.node_id, DecisionVerdict.STALE,
                                           reason=f"stale: {why}; still in flight", context=p.context,
                                           snapshot_step=p.snapshot_step, recipe_version=p.version))
        self.pending.clear()

    def _outcome(self, reason: str, wall: float, state: RunState) -> SuperviseOutcome:
        nodes = self.store.nodes(self.search_id)
        chain = tuple(n for n in nodes if n.source not in (T.ROOT, T.FIXED))
        fixed = T.fixed_path(nodes)[-1]
        decisions = [d for d in self.store.decisions(self.search_id, kind=DecisionKind.MANAGER) if d.source != T.FIXED]
        verdicts: dict[str, int] = {}
        for d in decisions:
            verdicts[d.verdict.value] = verdicts.get(d.verdict.value, 0) + 1
        objective = self.task.objective
        evals = [(s, m[objective.metric]) for n in chain for s, m in self.store.metrics(n.id) if objective.metric in m]
        best = max(evals, key=lambda sv: objective.utility(sv[1])) if evals else (None, None)
        outcome = SuperviseOutcome(self.run_dir, objective.metric, chain, fixed if fixed.depth else None, best[1],
                                   best[0], verdicts, sum(d.applied for d in decisions), wall, self.train_s, reason,
                                   stopped=state is RunState.STOPPED,
                                   exit_status=self.signals.exit_status if self.signals.signum is not None else 0)
        settle_moot(self.store, self.search_id, f"the run {state.value} ({reason})")
        self.store.add_event(self.search_id, EventKind.STOPPED, reason, data={
            "wall_s": wall, "train_s": self.train_s, "verdicts": verdicts, "applied": outcome.applied})
        self.reporter.finished(outcome)
        return outcome

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.manager.close()
        self.store.close()
        if self.owner is not None:
            self.owner.release()


def supervise(words: Sequence[str] = (), resume: str | Path | None = None,
              reporter: Reporter | None = None) -> SuperviseOutcome:
    """Run (or continue) a supervised run; the Python twin of ``searchmgr supervise``."""
    with StopSignals() as signals:  # SIGTERM/SIGINT: the run stops at its next boundary, from creation on
        sup = Supervisor.resume(Path(resume), words, reporter) if resume is not None \
            else Supervisor.create(words, reporter)
        sup.signals = signals
        try:
            return sup.run()
        except KeyboardInterrupt:  # a second signal: stop now
            ids = sup.store.interrupt_running(sup.search_id)
            why = f"stopped at once by {signals.received or 'SIGINT'}; nodes {ids} interrupted"
            sup.store.add_event(sup.search_id, EventKind.INTERRUPTED, why)
            sup.store.set_run_state(sup.search_id, RunState.STOPPED, why)
            raise
        except Exception as e:
            sup.store.set_run_state(sup.search_id, RunState.FAILED, f"{type(e).__name__}: {e}")
            raise
        finally:
            sup.close()
