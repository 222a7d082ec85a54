"""The coordinator: ask for the next node, tell it the result; the only writer of the tree.

* :meth:`Coordinator.ask` plans (:mod:`searchmgr.policies` over a snapshot of the
  store, counting in-flight nodes), proposes (the manager, then the fallback),
  verifies, and inserts a pending node. A person's child (a command from the service,
  :meth:`Coordinator.person_child`) is verified and created the same way: every node is
  created by ``_add_child``, with the decision that made it.
* :meth:`Coordinator.evaluated` records one evaluation of a training node (an event of the
  executor's) and asks that node's own stopper whether to prune it; a prune goes back to
  the executor as ``executor.stop(node)``.
* :meth:`Coordinator.tell` scores a finished segment and backs it up the tree in one
  store transaction, then applies the checkpoint retention policy.
* :meth:`Coordinator.run` keeps the executor's workers busy until a budget is spent or
  the tree is exhausted, and consumes the executor's events (:mod:`searchmgr.executors.events`)
  in its own loop. Slow managers (LLMs) are asked ahead while segments train.

A killed coordinator loses at most the segments in flight: they stay ``running`` in
the store and resume retrains them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from searchmgr import policies as policy
from searchmgr import retention, selection
from searchmgr import tree as T
from searchmgr import uct
from searchmgr.attempts import run_attempts
from searchmgr.budget import Budget
from searchmgr.commands import ChildRequest, apply_commands, person_decision, settle_moot
from searchmgr.config import SearchConfig
from searchmgr.decision import AuditEntry, Decision, KnobUpdate
from searchmgr.executors import Evaluated, Executor, Job, TaskSpec, Trained, make_executor
from searchmgr.managers import Manager, Observation, PathStep, ProposalContext, Sibling, manager_class
from searchmgr.outcome import Outcome
from searchmgr.progress import Reporter
from searchmgr.rundir import checkpoint_ref
from searchmgr.recorder import Recorder, Trace
from searchmgr.repair import quarantine
from searchmgr.rundir import RunLock
from searchmgr.stoppers import Peer, StopContext, Stopper, stopper_class
from searchmgr.stoppers.references import references
from searchmgr.sanitize import shorten
from searchmgr.surface import same_recipe
from searchmgr.signals import StopSignals
from searchmgr.store import (
    CommandKind, DecisionKind, DiskFull, EventKind, Node, NodeStatus, RunState, TreeStore, DecisionVerdict,
)
from searchmgr.tasks import Segment, Task
from searchmgr.tasks.contract import TaskContractError
from searchmgr.telemetry import summarize


def diverged(metrics: dict[str, float], metric: str, step: int) -> str | None:
    """Why a segment must stop at this evaluation (its objective is not finite), or None."""
    value = metrics.get(metric)
    return None if value is None or math.isfinite(value) else f"diverged at step {step}: {metric}={value}"


IDLE_FAILURES = 20  # segments in a row failing before their first step end the search


@dataclass
class _Live:
    """A node in an executor's hands: its stopper and what that stopper compares against."""

    node: Node
    stopper: Stopper | None  # None: nothing may prune this node
    best_here: float | None
    best_all: float | None
    min_step: int
    used_before: int
    reference_step: int | None  # where best_here was reached, when not at the node's end (stopper.reference=horizon)
    noise: float | None = None  # the objective's evaluation noise over the tree (stopper.noise)
    peers: tuple[Peer, ...] = ()  # finished segments at its depth (stopper.reference=rank)
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    stopped_at: tuple[int, dict[str, float]] | None = None
    diverged: str | None = None  # why, at the first non-finite evaluation of the objective


class Coordinator:
    """Ask/tell over one run's store. Build it through :mod:`searchmgr.search` (create or resume)."""

    def __init__(self, run_dir: Path, config: SearchConfig, task: Task, task_spec: TaskSpec, store: TreeStore,
                 search_id: int, reporter: Reporter | None = None, executor: Executor | None = None,
                 search_policy: policy.Policy | None = None, owner: RunLock | None = None):
        self.owner = owner  # the run's lock, released by close()
        self.run_dir = run_dir
        self.config = config
        self.task = task
        self.task_spec = task_spec
        self.store = store
        self.search_id = search_id
        self.reporter = reporter or Reporter()
        self.recorder = Recorder(store, search_id)
        m = config.manager
        self.manager: Manager = manager_class(m.name).from_config(config)
        self.fallback: Manager | None = None if m.fallback == m.name else manager_class(m.fallback).from_config(config)
        self.policy = search_policy or policy.make_policy(config, task)
        self.policy.resume(self.nodes(), store.metrics)
        self.executor = executor or make_executor(config, task)
        slow = self.manager.slow and config.executor.name != "inline"  # inline cannot train while it asks
        self.ahead = config.executor.ahead if config.executor.ahead is not None else (
            self.executor.capacity if slow else 0)
        self.queued: deque[Node] = deque()  # asked ahead, waiting for a free worker
        self.live: dict[int, _Live] = {}  # submitted to the executor
        self.propose_s = 0.0  # seconds spent planning and proposing
        self.idle_failures = 0  # segments in a row that failed before training a step
        self.signals = StopSignals()  # explore installs its handlers: SIGTERM/SIGINT stop at the next safe point
        self.stopping: str | None = None  # why the run stops (a stop command, a signal): nothing new starts
        self.unanswered: str | None = None  # the last proposal round's error when no manager answered at all
        self.reporter.start(task.objective.metric, config.budget.steps, store.redact)

    # snapshots ------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        return self.store.nodes(self.search_id)

    def in_flight(self) -> frozenset[int]:
        return frozenset(self.live) | frozenset(n.id for n in self.queued)

    def budget(self, nodes: list[Node]) -> Budget:
        """The step budget: spent, committed to in-flight or unfinished nodes (at their full length), left."""
        return Budget.of(nodes, self.config.budget.steps, self.in_flight())

    def _retry_owed(self, nodes: list[Node]) -> bool:
        """An unfinished node (a dead worker's) waits: it was paid for when it started, so it is retrained
        even after a budget is reached."""
        busy = self.in_flight()
        return any(n.status in policy.UNFINISHED and n.id not in busy for n in nodes)

    # ask ---------------------------------------------------------------------------------
    def ask(self) -> Node | policy.Wait | policy.Exhausted:
        """Plan, propose and verify the next node; it is stored as pending (or is an unfinished one again)."""
        while True:
            nodes = self.nodes()
            step = self.policy.plan(nodes, in_flight=self.in_flight(), closed=self.store.closed(self.search_id),
                                    budget=self.budget(nodes))
            if isinstance(step, (policy.Wait, policy.Exhausted)):
                return step
            index = T.by_id(nodes)
            if isinstance(step, policy.Retry):
                return index[step.node]
            if isinstance(step, policy.Grow):
                return self._grow(index[step.parent], step)
            parent = index[step.parent]
            proposed = self._propose(parent, nodes)
            if proposed is not None:
                return self._add_child(parent, *proposed)
            if self.unanswered is not None:  # an outage, not a parent without children: stop, resumable
                self._stop(f"no manager answered for node {parent.id} ({self.unanswered}); the parent stays open: "
                           "resume once the endpoint answers")
                return policy.Wait("no manager answered")
            self.store.close_node(self.search_id, parent.id, "no admissible distinct child")
            self.store.add_event(self.search_id, EventKind.CLOSED, "no admissible distinct child; parent closed",
                                 node_id=parent.id)

    def _grow(self, parent: Node, step: policy.Grow) -> Node:
        """A child whose recipe the policy set (fixed path, baselines): checked against the surface, traced."""
        surface = self.task.surface
        recipe = surface.check(step.recipe)
        if same_recipe(recipe, parent.recipe):
            decision = Decision.hold(surface, step.note)
        else:
            changed = [k for k in surface.names if recipe[k] != parent.recipe[k]]
            decision = Decision(
                diagnosis=step.note, expected_outcome=f"the {step.source} policy's choice; nothing is predicted",
                control_audit=[AuditEntry(knob=k, verdict="selected" if k in changed else "deferred",
                                          reason=f"set by the {step.source} policy") for k in surface.names],
                updates=[KnobUpdate(knob=k, op="add", value=recipe[k] - parent.recipe[k]) for k in changed])
        node = self._add_child(parent, recipe, Trace(DecisionKind.MANAGER, step.source, parent.id,
                                                     DecisionVerdict.ACCEPTED, parsed=decision.model_dump()))
        self.policy.added(node, step.tag)
        return node

    def person_child(self, request: ChildRequest) -> Node | str:
        """A person's child (a command): verified against the tree as it is now, its decision traced, created
        like every node; else why it is refused (the rejected decision is traced too)."""
        nodes = self.nodes()
        parent = T.by_id(nodes)[request.parent_id]
        siblings = [c.recipe for c in T.children(nodes, parent.id)]
        trace, recipe = person_decision(self.task.surface, parent, siblings, request, max_depth=self.config.max_depth)
        if recipe is None:
            self.recorder.record(trace)
            return trace.reason
        return self._add_child(parent, recipe, trace)

    def _add_child(self, parent: Node, recipe: dict, trace: Trace) -> Node:
        """The one place where nodes are created (the policy's, the manager's and a person's): the accepted
        decision that made it (``trace``) is recorded, then the pending child one segment below ``parent``."""
        did = self.recorder.record(trace)
        s = self.config.segment_steps
        return self.store.add_node(self.search_id, parent.id, parent.depth + 1, parent.end_step,
                                   parent.end_step + s, recipe, trace.source, did)

    def context(self, parent: Node, nodes: list[Node]) -> ProposalContext:
        """What a manager may read about ``parent``: telemetry of its path, its siblings, the budget left."""
        path = T.path_to(nodes, parent.id)
        history: list[tuple[int, dict[str, float]]] = []
        steps = []
        for n in path[1:]:
            m = self.store.metrics(n.id)
            history += m
            decision = self.store.decision(n.decision_id).parsed if n.decision_id else None
            steps.append(PathStep(n.id, n.depth, n.start_step, n.end_step, n.recipe, n.val_score, decision,
                                  m[-1][1] if m else {}))
        siblings = []
        for c in T.children(nodes, parent.id):
            d = self.store.decision(c.decision_id).parsed if c.decision_id else None
            siblings.append(Sibling(c.id, c.recipe, c.status.value, c.val_score, (d or {}).get("updates")))
        s = self.config.segment_steps
        return ProposalContext(
            task=self.task.name, family=self.task.family, description=self.task.description,
            objective=self.task.objective, surface=self.task.surface, parent_id=parent.id,
            parent_recipe=parent.recipe, depth=parent.depth + 1, max_depth=self.config.max_depth,
            start_step=parent.end_step, end_step=parent.end_step + s,
            telemetry=summarize(history, self.task.objective), path=tuple(steps), siblings=tuple(siblings),
            budget_left_steps=self.config.budget.steps - T.steps_used(nodes), seed=self.config.seed,
            evidence=self.evidence(nodes), parent_utility=parent.utility)

    def evidence(self, nodes: list[Node]) -> tuple[Observation, ...]:
        """Every scored segment below the root (done or pruned where it stopped; diverged as None)."""
        horizon = self.config.horizon
        index = T.by_id(nodes)
        out = []
        for n in nodes:
            scored = n.status in (NodeStatus.DONE, NodeStatus.PRUNED) and n.utility is not None
            blown = n.status is NodeStatus.FAILED and (n.error or "").startswith("diverged")
            if n.depth > 0 and (scored or blown):
                out.append(Observation(n.recipe, (n.start_step + max(n.steps_trained, 1)) / horizon,
                                       index[n.parent_id].utility, n.utility if scored else None))
        return tuple(out)

    def _propose(self, parent: Node, nodes: list[Node]) -> tuple[dict, Trace] | None:
        """Ask the manager (then the fallback, if it is another one) until the verifier admits a child: its
        recipe and the accepted attempt's trace (recorded with the child; every other attempt here)."""
        ctx = self.context(parent, nodes)
        rounds = [(self.manager, self.manager.name)]
        if self.fallback is not None:
            rounds.append((self.fallback, f"{self.fallback.name} (fallback)"))
        answered, reason = False, None
        for manager, label in rounds:
            for n, attempt in enumerate(run_attempts(manager, ctx, self.config.manager.attempts)):
                trace = Trace.of_attempt(attempt, n, label, parent.id, ctx.to_dict())
                if attempt.verdict is not None and attempt.verdict.ok:
                    return attempt.verdict.recipe, trace
                self.recorder.record(trace)
                reason = attempt.error if attempt.proposal is None else str(attempt.verdict.rejection)
                self.reporter.rejected(parent.id, label, reason if attempt.proposal else f"manager error: {reason}")
                answered = answered or attempt.proposal is not None
        self.unanswered = None if answered else reason  # every attempt an error: no manager answered at all
        return None

    # submit -------------------------------------------------------------------------------
    def _job(self, node: Node, nodes: list[Node]) -> Job | None:
        """Mark ``node`` running and describe its training; None (and the node failed) when its parent's
        checkpoint is gone."""
        cfg, objective = self.config, self.task.objective
        parent = T.by_id(nodes)[node.parent_id]
        if parent.checkpoint is None:
            self.store.start_node(node.id)
            self._finish(node, NodeStatus.FAILED, None, None, 0, 0.0,
                         error=f"the checkpoint of its parent (node {parent.id}) is gone")
            return None
        self.store.start_node(node.id)
        decision = self.store.decision(node.decision_id).parsed if node.decision_id else None
        self.reporter.node_started(node, node.source, (decision or {}).get("diagnosis"))
        segment = Segment(node.start_step, node.end_step - node.start_step, cfg.horizon, cfg.eval_every)
        stopper = self.policy.stopper(node, lambda: stopper_class(cfg.stopper.name).from_config(cfg))
        with_noise = stopper is not None and cfg.stopper.noise
        curves = with_noise or (stopper is not None and cfg.stopper.reference == "rank")  # one query, when read
        refs = references(node, nodes, objective, max_depth=cfg.max_depth, reference=cfg.stopper.reference,
                          with_noise=with_noise, series=self.store.series(objective.metric) if curves else {})
        self.live[node.id] = _Live(
            node, stopper, refs.best_here, refs.best_all,
            node.start_step + math.ceil(cfg.stopper.min_fraction * segment.steps),
            T.steps_used(nodes) - node.steps_trained, refs.reference_step, refs.noise, refs.peers)
        return Job(node.id, self.task_spec, node.recipe, segment, self.run_dir / parent.checkpoint,
                   parent.checkpoint_sha256, self.run_dir / checkpoint_ref(node.id), cfg.threads)

    def evaluated(self, node_id: int, step: int, metrics: dict[str, float]) -> bool:
        """Record one evaluation of a training node; True when its stopper prunes it here."""
        live = self.live.get(node_id)
        if live is None or live.stopped_at is not None:
            return True  # already told, or already pruned: later evaluations are not recorded
        node, objective = live.node, self.task.objective
        self.store.add_metrics(node_id, step, metrics, step - node.start_step)
        self.reporter.evaluated(node, step, metrics, live.used_before + step - node.start_step)
        live.diverged = diverged(metrics, objective.metric, step)
        if live.diverged:
            live.stopped_at = (step, dict(metrics))
            return True
        if live.stopper is None or objective.metric not in metrics or step >= node.end_step:
            return False
        live.trajectory.append((step, metrics[objective.metric]))
        ctx = StopContext(node.id, node.depth, step, node.start_step, node.end_step, live.min_step, objective,
                          tuple(live.trajectory), live.best_here, live.best_all, live.reference_step, live.noise,
                          live.peers)
        verdict = live.stopper.should_stop(ctx)
        stop = verdict.stop and step >= live.min_step
        if verdict.stop or verdict.record:
            self.recorder.record(Trace.of_stop(verdict, live.stopper.name, node.id, ctx.to_dict(), stop))
        if stop:
            live.stopped_at = (step, dict(metrics))
        return stop

    # tell -----------------------------------------------------------------------------------
    def tell(self, trained: Trained) -> None:
        """Score a segment the executor finished and back it up the tree (one transaction)."""
        live = self.live.pop(trained.node_id)
        if live.stopper is not None:
            live.stopper.close()
        node, objective = live.node, self.task.objective
        if trained.interrupted:
            self.store.interrupt_running(self.search_id, [node.id])
            self.store.add_event(self.search_id, EventKind.NODE_INTERRUPTED,
                                 f"node {node.id}: {trained.error}; it is retried", node_id=node.id)
            self.reporter.message(f"node {node.id} was interrupted ({trained.error}); it will be retrained")
            return
        if trained.error is not None:
            self.store.add_event(self.search_id, EventKind.FAILED, trained.error, node_id=node.id,
                                 data={"traceback": trained.traceback})
            self._finish(node, NodeStatus.FAILED, None, None, self.store.node(node.id).steps_trained,
                         trained.train_s, error=trained.error)
            if trained.parent_damaged:  # no child can train from that parent: take it out of the search
                quarantine(self.store, self.store.node(node.parent_id), trained.parent_damaged, self.in_flight())
            if trained.broke_contract:  # a broken plug-in: stop at its first bad segment, saying what to fix
                (self.run_dir / checkpoint_ref(node.id)).unlink(missing_ok=True)
                raise TaskContractError(trained.error.removeprefix("TaskContractError: "))
        elif live.diverged:
            self._finish(node, NodeStatus.FAILED, None, None, live.stopped_at[0] - node.start_step, trained.train_s,
                         error=live.diverged)
        elif live.stopped_at is not None:
            step, metrics = live.stopped_at
            steps = max(step - node.start_step, trained.steps_done)
            self._finish(node, NodeStatus.PRUNED, metrics.get(objective.metric), None, steps, trained.train_s,
                         metrics=metrics)
        elif trained.stopped:
            raise RuntimeError(f"task {self.task.name} stopped node {node.id} that nobody asked to stop")
        else:
            val = trained.metrics.get(objective.metric)
            if val is None or not math.isfinite(val):
                self._finish(node, NodeStatus.FAILED, None, None, trained.steps_done, trained.train_s,
                             error=f"diverged: final {objective.metric}={val}")
            elif trained.checkpoint_sha256 is None:
                self._finish(node, NodeStatus.FAILED, None, None, trained.steps_done, trained.train_s,
                             error=f"task {self.task.name} returned no checkpoint for a finished segment")
            else:
                self._finish(node, NodeStatus.DONE, val, trained.metrics.get(objective.test_metric),
                             trained.steps_done, trained.train_s, checkpoint_ref(node.id),
                             trained.checkpoint_sha256, metrics=dict(trained.metrics))
        finished = self.store.node(node.id)
        if finished.checkpoint is None:  # a failed segment may have written one
            (self.run_dir / checkpoint_ref(node.id)).unlink(missing_ok=True)
        self.policy.told(finished)
        self._retain()

    def _finish(self, node: Node, status: NodeStatus, val: float | None, test: float | None, steps: int,
                train_s: float, ref: str | None = None, sha: str | None = None, error: str | None = None,
                metrics: dict[str, float] | None = None) -> None:
        """Record a node's end and back its utility up the tree (the objective's, with the task's tie-break);
        ``metrics``, the segment's last evaluation, comes with every ``val``."""
        nodes = self.nodes()
        utility = self.task.objective.search_utility(metrics) if val is not None else None
        backed = utility
        if backed is None or not math.isfinite(backed):  # failures back up the worst score seen
            seen = [n.utility for n in nodes if n.utility is not None and math.isfinite(n.utility)]
            backed = min(seen) if seen else None
            utility = None
        backup = uct.backup(policy.view(nodes), node.id, backed) if backed is not None else None
        self.store.finish_node(node.id, status, val_score=val, test_score=test, utility=utility,
                               steps_trained=steps, train_s=train_s, checkpoint=ref, checkpoint_sha256=sha,
                               error=error, backup=backup)
        nodes = self.nodes()
        best = T.best_leaf(nodes, self.task.objective, self.config.max_depth)
        best = best if best is not None and best.depth == self.config.max_depth else None  # complete only: it
        done = sum(n.depth > 0 and n.status.finished for n in nodes)  # moves one way, never back past a partial one
        self.reporter.node_finished(self.store.node(node.id), best.val_score if best else None,
                                    T.steps_used(nodes), done)

    def _retain(self) -> None:
        """Delete the checkpoints no policy can select any more (recorded in the store first)."""
        nodes, closed = self.nodes(), self.store.closed(self.search_id)
        doomed = retention.doomed(nodes, keep=self.config.checkpoints.keep, objective=self.task.objective,
                                  max_depth=self.config.max_depth, in_flight=self.in_flight(),
                                  may_expand=lambda n: self.policy.may_expand(n, nodes, closed),
                                  keep_best=self.config.select.reevaluate or 1)
        for n in doomed:
            self.store.drop_checkpoint(n.id, "retention: no policy can select it as a parent")
            (self.run_dir / n.checkpoint).unlink(missing_ok=True)

    # the loop ---------------------------------------------------------------------------------
    def _budget_reason(self, started: float) -> str | None:
        budget, nodes = self.config.budget, self.nodes()
        busy = len(self.in_flight())
        if budget.nodes is not None and sum(n.depth > 0 and n.status.finished for n in nodes) + busy >= budget.nodes:
            return f"node budget ({budget.nodes}) reached"
        if budget.wall_time_s is not None and time.perf_counter() - started >= budget.wall_time_s:
            return f"wall-time budget ({budget.wall_time_s:g}s) reached"
        if not self.budget(nodes).can_finish(self.config.segment_steps):
            return f"step budget ({budget.steps}) exhausted"
        return None

    def run(self) -> Outcome:
        started = time.perf_counter()
        trained, train_s = 0, 0.0
        exhausted: str | None = None  # final: nothing can ever be planned again
        self.store.set_run_state(self.search_id, RunState.RUNNING)
        while True:
            # a person's commands (searchmgr.commands): children queued as pending nodes, pause, stop, close
            commands = apply_commands(self.store, self.search_id, self.reporter, grow=self.person_child,
                                      wait=not self.live, stopped=self.stopping, signalled=self.signals.reason)
            self._stop(commands.stop or self.signals.reason())
            exhausted = exhausted or self.stopping
            # budgets are checked again after every result: a pruned segment gives back what it did not train
            reason = exhausted or self._budget_reason(started)
            if not commands.paused and not self.stopping:  # nodes asked ahead wait for --resume after a stop
                self._submit_queued()
            while ((reason is None or (not exhausted and self._retry_owed(self.nodes()))) and not commands.paused
                   and len(self.queued) + len(self.live) < self.executor.capacity + self.ahead):
                t0 = time.perf_counter()
                got = self.ask()  # with workers busy, a slow manager answers while they train
                self.propose_s += time.perf_counter() - t0
                if isinstance(got, policy.Wait):
                    break
                if isinstance(got, policy.Exhausted):
                    reason = exhausted = got.reason
                    break
                self.queued.append(got)
                self._submit_queued()
                reason = self._budget_reason(started)
            if not self.live:
                if reason is None:
                    continue  # a queued node failed before training: plan again
                break
            for result in self._ends():
                self.tell(self._signal_stopped(result))
                if result.disk_full:  # the node is interrupted (retrained by --resume); nothing else can train
                    raise DiskFull(result.error)
                exhausted = exhausted or self._failing(result)
                trained += not result.interrupted
                train_s += result.train_s
        if not self.stopping and self.config.select.reevaluate:  # a finished run names its best by fresh scores
            selection.reevaluate(self.store, self.search_id, self.run_dir, self.task, self.nodes(),
                                 k=self.config.select.reevaluate, repeats=self.config.select.repeats,
                                 max_depth=self.config.max_depth, run_seed=self.config.seed, say=self.reporter.message)
        return self._outcome(reason, trained, time.perf_counter() - started, train_s)

    def _ends(self) -> list[Trained]:
        """Take the executor's events until segments end, and those ends: each evaluation is recorded and
        judged on the way, and a segment its stopper pruned, or every segment once a signal asked the run to
        stop, is stopped at its next evaluation."""
        ended: list[Trained] = []
        while not ended:
            for event in self.executor.events():
                if not isinstance(event, Evaluated):
                    ended.append(event.trained)
                elif self.evaluated(event.node_id, event.step, dict(event.metrics)) or self.signals.signum is not None:
                    self.executor.stop(event.node_id)
        return ended

    def _failing(self, result: Trained) -> str | None:
        """Why the search must end when segments keep failing before they train a step (they spend no budget,
        so the search would plan failing children for ever), else None."""
        node = self.store.node(result.node_id)
        idle = node.status is NodeStatus.FAILED and node.steps_trained == 0
        self.idle_failures = self.idle_failures + 1 if idle else 0
        if self.idle_failures < IDLE_FAILURES:
            return None
        return (f"{self.idle_failures} segments in a row failed before training a step (the last: "
                f"{shorten(node.error or '?')}); fix the task and continue with --resume")

    def _stop(self, why: str | None) -> None:
        """A stop command or a signal: nothing new starts; a signal also stops the segments in training."""
        if why is None or self.stopping:
            return
        self.stopping = why
        self.store.set_run_state(self.search_id, RunState.STOPPING, why)
        self.reporter.message(f"{why}: stopping; segments in training "
                              + ("stop at their next evaluation (a second signal stops at once)"
                                 if self.signals.signum is not None else "finish first"))

    def _signal_stopped(self, result: Trained) -> Trained:
        """A segment that a signal stopped (not its stopper) is interrupted: ``--resume`` retrains it."""
        live = self.live.get(result.node_id)
        if result.stopped and self.signals.signum is not None and live is not None and live.stopped_at is None:
            return dataclasses.replace(result, interrupted=True, error=self.signals.reason())
        return result

    def _submit_queued(self) -> None:
        while self.queued and len(self.live) < self.executor.capacity:
            node = self.queued.popleft()
            job = self._job(node, self.nodes())
            if job is not None:
                self.executor.submit(job)

    def _outcome(self, reason: str, trained: int, wall: float, train_s: float) -> Outcome:
        nodes = self.nodes()
        best = selection.best_leaf(self.store, self.search_id, nodes, self.task.objective, self.config.max_depth)
        fixed = T.fixed_path(nodes)
        outcome = Outcome(self.run_dir, self.task.objective.metric, reason, best,
                          tuple(T.path_to(nodes, best.id)) if best else (),
                          fixed[-1] if len(fixed) > 1 else None, T.steps_used(nodes), self.config.budget.steps,
                          trained, wall, train_s, self.executor.capacity, stopped=self.stopping is not None,
                          exit_status=self.signals.exit_status if self.signals.signum is not None else 0)
        self.store.add_event(self.search_id, EventKind.STOPPED, reason, data={
            "wall_s": wall, "train_s": train_s, "nodes_trained": trained, "propose_s": self.propose_s,
            "executor": self.config.executor.name, "workers": self.executor.capacity})
        ended = f"the run {'stopped' if self.stopping else 'ended'} ({reason})"
        settle_moot(self.store, self.search_id, ended, (CommandKind.PAUSE, CommandKind.RESUME, CommandKind.STOP)
                    if not self.stopping else tuple(CommandKind))
        self.store.set_run_state(self.search_id, RunState.STOPPED if self.stopping else RunState.FINISHED, reason)
        self.reporter.finished(outcome)
        if not self.stopping and not self._alternatives(nodes, fixed):  # a stopped run just resumes
            which = ("no schedule but the fixed recipe's" if fixed[-1].depth == self.config.max_depth
                     else "no schedule")
            self.reporter.message(f"{which} reached the horizon (step {self.config.horizon}): there is nothing to "
                                  "compare with it yet; resume with a larger budget.steps")
        return outcome

    def _alternatives(self, nodes: list[Node], fixed: list[Node]) -> list[Node]:
        """The complete schedules (trained to the horizon) other than the fixed recipe's."""
        on_fixed = {n.id for n in fixed}
        return [n for n in nodes if n.depth == self.config.max_depth and n.status is NodeStatus.DONE
                and n.id not in on_fixed]

    def interrupt(self) -> list[int]:
        """The user stopped the search: nodes in the executors' hands become interrupted."""
        return self.store.interrupt_running(self.search_id)

    def close(self) -> None:
        self.executor.close()
        for live in self.live.values():
            if live.stopper is not None:
                live.stopper.close()
        self.manager.close()
        if self.fallback is not None:
            self.fallback.close()
        self.store.close()
        if self.owner is not None:
            self.owner.release()
