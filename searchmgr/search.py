"""The search loop: select -> propose -> verify -> train -> score -> backup, one node at a time.

The store is the single source of truth: every step reads the tree from it and
writes its result back in one transaction, so a killed process loses at most the
segment that was running, and :meth:`Search.resume` continues where it stopped.

Phase 1 grows the fixed path (the base recipe held for every segment) to the full
horizon, so every search measures itself against its own fixed baseline. Phase 2
is UCT with virtual-child expansion (:mod:`searchmgr.uct`).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from searchmgr import tree as T
from searchmgr import uct
from searchmgr.config import FROZEN_KEYS, ConfigError, SearchConfig, build_config, merge, parse_overrides
from searchmgr.decision import Decision, verify
from searchmgr.managers import Manager, PathStep, ProposalContext, Sibling, manager_class
from searchmgr.managers.base import ManagerError
from searchmgr.prefetch import Attempt, Prefetcher, Prepared, likely_parents, run_attempts
from searchmgr.progress import Reporter
from searchmgr.stoppers import StopContext, Stopper, stopper_class
from searchmgr.store import (
    DecisionKind, Node, NodeStatus, TreeStore, load_checkpoint, save_checkpoint,
)
from searchmgr.tasks import Segment, Task, TaskError, load_task, reference_of, source_change
from searchmgr.tasks.contract import TaskContractError
from searchmgr.telemetry import summarize

DB_NAME = "tree.db"
CONFIG_NAME = "config.json"


class RunNotFound(FileNotFoundError):
    def __str__(self) -> str:
        return f"{self.args[0]} is not a run directory (no {DB_NAME}); give the out= of an earlier explore"


def resolve(config: SearchConfig, instance: Task | None = None) -> tuple[SearchConfig, Task]:
    """Build the task (``instance``, or what ``config.task`` names) and fill the config's defaults from it;
    raise :class:`ConfigError` on any problem."""
    try:
        task = load_task(config.task, config.task_options, instance)
    except TaskError as e:
        raise ConfigError(str(e)) from None
    d = task.search_defaults()
    budget = config.budget.model_copy(update={"steps": config.budget.steps or d.budget_steps})
    config = config.model_copy(update={
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


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    metric: str
    stop_reason: str
    best: Node | None
    best_path: tuple[Node, ...]
    fixed: Node | None  # the fixed recipe's last segment
    steps_used: int
    budget_steps: int
    nodes_trained: int
    wall_s: float
    train_s: float

    @property
    def overhead_share(self) -> float:
        return 0.0 if self.wall_s <= 0 else max(self.wall_s - self.train_s, 0.0) / self.wall_s

    def render(self) -> str:
        lines = [f"search stopped: {self.stop_reason}",
                 f"steps {self.steps_used}/{self.budget_steps}, nodes trained this session {self.nodes_trained}, "
                 f"wall {self.wall_s:.1f}s, outside training {100 * self.overhead_share:.1f}%"]
        if self.best is not None:
            lines.append(f"best {self.metric}={self.best.val_score:.4g} (test {_fmt(self.best.test_score)}) "
                         f"at node {self.best.id}")
            for n in self.best_path[1:]:
                lines.append(f"  steps {n.start_step:>6}-{n.end_step:<6} node {n.id:<4} "
                             + " ".join(f"{k}={v:.3g}" for k, v in n.recipe.items()))
        if self.fixed is not None and self.fixed.val_score is not None:
            lines.append(f"fixed recipe {self.metric}={self.fixed.val_score:.4g} (test {_fmt(self.fixed.test_score)})")
        lines.append(f"run: {self.run_dir}")
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


class Search:
    """A search bound to a run directory. Build with :meth:`create` or :meth:`resume`, then :meth:`run`."""

    def __init__(self, run_dir: Path, config: SearchConfig, task: Task, store: TreeStore, search_id: int,
                 reporter: Reporter | None = None):
        self.run_dir = run_dir
        self.config = config
        self.task = task
        self.store = store
        self.search_id = search_id
        self.reporter = reporter or Reporter()
        self.manager = self._make_manager(config.manager.name)
        self.fallback = self._make_manager(config.manager.fallback)
        self.stopper = self._make_stopper()
        self.closed: set[int] = set()  # parents no manager could extend with a distinct child this session
        self.prefetch = self._make_prefetcher()
        self.propose_s = 0.0  # seconds the loop spent choosing and proposing the next node (training waits)
        self.reporter.start(task.objective.metric, config.budget.steps)

    # construction -------------------------------------------------------------
    def _make_manager(self, name: str) -> Manager:
        cls = manager_class(name)
        factory = getattr(cls, "from_config", None)
        return factory(self.config) if factory else cls()

    def _make_prefetcher(self) -> Prefetcher | None:
        """Prefetch proposals for slow managers (LLMs) unless ``manager.prefetch`` says otherwise."""
        m = self.config.manager
        on = m.prefetch if m.prefetch is not None else bool(getattr(self.manager, "slow", False))
        return Prefetcher(self.manager, m.attempts, m.prefetch_parents) if on else None

    def _make_stopper(self) -> Stopper:
        cls = stopper_class(self.config.stopper.name)
        factory = getattr(cls, "from_config", None)
        if factory:
            return factory(self.config)
        if self.config.stopper.name == "rule":
            return cls(window=self.config.stopper.window, margin=self.config.stopper.margin)
        return cls()

    @classmethod
    def create(cls, config: SearchConfig, reporter: Reporter | None = None, task: Task | None = None) -> "Search":
        config, task = resolve(config, task)
        run_dir = config.out or Path("runs") / f"{config.task}-{datetime.now():%Y%m%d-%H%M%S}"
        if (run_dir / DB_NAME).exists():
            raise ConfigError(f"{run_dir} already holds a run; continue it with `searchmgr explore --resume "
                              f"{run_dir}` or choose another out=")
        config = config.model_copy(update={"out": run_dir})
        state = task.init(config.seed)  # before anything is written: a failing init leaves no run behind
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
        store = TreeStore(run_dir / DB_NAME)
        info = task.info()
        sid = store.create_search(config.task, config.model_dump(mode="json"), task.surface.describe(),
                                  task.surface.fingerprint(), info)
        search = cls(run_dir, config, task, store, sid, reporter)
        for k, v in info.items():
            search.reporter.message(f"{k}: {v}")
        # the root: the untrained model, the base recipe
        root = store.add_node(sid, None, 0, 0, 0, task.base_recipe(), T.ROOT, status=NodeStatus.RUNNING)
        ref, sha = search._save(root.id, state)
        store.finish_node(root.id, NodeStatus.DONE, val_score=None, test_score=None, utility=None,
                          steps_trained=0, checkpoint=ref, checkpoint_sha256=sha)
        store.add_event(sid, "created", f"run created for task {task.name}", data={"info": info})
        return search

    @classmethod
    def resume(cls, run_dir: Path, overrides: Mapping[str, Any] | None = None,
               reporter: Reporter | None = None, task: Task | None = None) -> "Search":
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
        if "out" in overrides and Path(overrides["out"]) != run_dir:
            raise ConfigError("resume keeps the run directory; drop out= or start a new run")
        config = build_config(merge(stored, {k: v for k, v in overrides.items() if k != "out"}))
        config = config.model_copy(update={"out": run_dir})
        config, task = resolve(config, task)
        if task.surface.fingerprint() != row["surface_fingerprint"]:
            raise ConfigError(
                f"the action surface of task {task.name} changed since this run was created "
                f"({row['surface_fingerprint']} -> {task.surface.fingerprint()}); resume refuses it because the "
                "stored recipes would no longer mean the same; start a new run")
        store.update_search_config(row["id"], config.model_dump(mode="json"))
        (run_dir / CONFIG_NAME).write_text(config.model_dump_json(indent=2))
        search = cls(run_dir, config, task, store, row["id"], reporter)
        ids = store.interrupt_running(row["id"])
        if ids:
            store.add_event(row["id"], "interrupted", f"nodes {ids} were running when the process died")
            search.reporter.message(f"nodes {ids} were interrupted; they will be retrained")
        changed = source_change(row["info"], task)
        if changed:
            search.reporter.message(changed)
        store.add_event(row["id"], "resumed", changed or "search resumed",
                        data={"overrides": overrides, "task_source": task.source.to_info()})
        return search

    # checkpoints ----------------------------------------------------------------
    def _save(self, node_id: int, state: dict) -> tuple[str, str]:
        ref = f"checkpoints/node_{node_id:05d}.pt"
        return ref, save_checkpoint(state, self.run_dir / ref)

    def _load(self, node: Node) -> dict:
        return load_checkpoint(self.run_dir / node.checkpoint, node.checkpoint_sha256)

    # the loop -------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        return self.store.nodes(self.search_id)

    def run(self) -> Outcome:
        started = time.perf_counter()
        trained, train_s = 0, 0.0
        reason = "budget exhausted"
        while True:
            nodes = self.nodes()
            used = T.steps_used(nodes)
            budget = self.config.budget
            if budget.nodes is not None and sum(n.depth > 0 and n.status.finished for n in nodes) >= budget.nodes:
                reason = f"node budget ({budget.nodes}) reached"
                break
            if budget.wall_time_s is not None and time.perf_counter() - started >= budget.wall_time_s:
                reason = f"wall-time budget ({budget.wall_time_s:g}s) reached"
                break
            if used + self.config.segment_steps > budget.steps:
                reason = f"step budget ({budget.steps}) exhausted"
                break
            t0 = time.perf_counter()
            node = self._next_node(nodes)
            self.propose_s += time.perf_counter() - t0
            if node is None:
                reason = "tree exhausted (every node has k_max children or reached max_depth)"
                break
            if self.prefetch is not None:
                self._speculate(node)
            train_s += self._train(node)
            trained += 1
        if self.prefetch is not None:
            for p in self.prefetch.drain():
                self._record_stale(p, "not needed: the search stopped")
        return self._outcome(reason, trained, time.perf_counter() - started, train_s)

    def _outcome(self, reason: str, trained: int, wall: float, train_s: float) -> Outcome:
        nodes = self.nodes()
        best = T.best_leaf(nodes, self.task.objective, self.config.max_depth)
        fixed = T.fixed_path(nodes)
        outcome = Outcome(self.run_dir, self.task.objective.metric, reason, best,
                          tuple(T.path_to(nodes, best.id)) if best else (),
                          fixed[-1] if len(fixed) > 1 else None, T.steps_used(nodes), self.config.budget.steps,
                          trained, wall, train_s)
        data = {"wall_s": wall, "train_s": train_s, "nodes_trained": trained, "propose_s": self.propose_s}
        if self.prefetch is not None:
            data["prefetch"] = {"requested": self.prefetch.requested, "used": self.prefetch.used}
        self.store.add_event(self.search_id, "stopped", reason, data=data)
        self.reporter.finished(outcome)
        return outcome

    def _next_node(self, nodes: list[Node]) -> Node | None:
        """The node to train next: an unfinished one, the fixed path's next segment, or a UCT expansion."""
        for n in nodes:
            if n.status in (NodeStatus.PENDING, NodeStatus.INTERRUPTED):
                return n
        fixed = T.fixed_path(nodes)
        tip = fixed[-1]
        if tip.depth < self.config.max_depth and tip.status is NodeStatus.DONE:
            decision = Decision.hold(self.task.surface, "fixed baseline: hold the base recipe")
            did = self.store.add_decision(self.search_id, tip.id, DecisionKind.MANAGER, T.FIXED, verdict="accepted",
                                          parsed=decision.model_dump())
            return self._add_child(tip, tip.recipe, T.FIXED, did)
        while True:
            sel = uct.select(self._view(nodes), c=self.config.uct.c, k_max=self.config.uct.k_max,
                             max_depth=self.config.max_depth)
            if sel is None:
                return None
            parent = T.by_id(nodes)[sel.parent]
            proposed = self._propose(parent, nodes)
            if proposed is not None:
                recipe, did, source = proposed
                return self._add_child(parent, recipe, source, did)
            self.closed.add(parent.id)
            self.store.add_event(self.search_id, "closed", "no admissible distinct child; parent closed",
                                 node_id=parent.id)

    def _add_child(self, parent: Node, recipe: dict, source: str, decision_id: int | None) -> Node:
        s = self.config.segment_steps
        return self.store.add_node(self.search_id, parent.id, parent.depth + 1, parent.end_step,
                                   parent.end_step + s, recipe, source, decision_id)

    def _view(self, nodes: list[Node]) -> uct.TreeView:
        views = []
        for n in nodes:
            views.append(uct.NodeView(
                id=n.id, parent=n.parent_id, depth=n.depth,
                expandable=n.status.expandable and n.checkpoint is not None and n.id not in self.closed,
                utility=n.utility, visits=n.visits, value_sum=n.value_sum))
        return uct.TreeView.build(views)

    # proposing ------------------------------------------------------------------
    def context(self, parent: Node, nodes: list[Node]) -> ProposalContext:
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
            budget_left_steps=self.config.budget.steps - T.steps_used(nodes), seed=self.config.seed)

    def _propose(self, parent: Node, nodes: list[Node]) -> tuple[dict, int, str] | None:
        """Ask the manager (then the fallback) until the verifier admits a child; None if nobody can.

        A proposal prefetched for this parent while the last segment trained is used when
        it is still valid for the tree as it stands; otherwise it is recorded as stale.
        """
        ctx = self.context(parent, nodes)
        rounds = [(self.manager, self.manager.name)]
        if self.fallback is not self.manager:
            rounds.append((self.fallback, f"{self.fallback.name} (fallback)"))
        for i, (manager, label) in enumerate(rounds):
            attempts = self._prefetched(parent, ctx) if i == 0 and self.prefetch is not None else None
            prefetched = attempts is not None
            if attempts is None:
                attempts = run_attempts(manager, ctx, self.config.manager.attempts)
            result = self._record_attempts(parent, ctx, label, attempts, prefetched)
            if result is not None:
                return result
        return None

    def _record_attempts(self, parent: Node, ctx: ProposalContext, label: str, attempts: Sequence[Attempt],
                         prefetched: bool) -> tuple[dict, int, str] | None:
        """Store every attempt (main thread); return the admitted child, if any."""
        for n, a in enumerate(attempts):
            if a.proposal is None:
                self.store.add_decision(self.search_id, parent.id, DecisionKind.MANAGER, label, verdict="error",
                                        reason=a.error, context=ctx.to_dict(), attempt=n, latency_s=a.error_latency_s)
                self.reporter.rejected(parent.id, label, f"manager error: {a.error}")
                continue
            p, v = a.proposal, a.verdict
            context = dict(p.request or ctx.to_dict())
            if prefetched:
                context["prefetched"] = True
            did = self.store.add_decision(
                self.search_id, parent.id, DecisionKind.MANAGER, label,
                verdict="accepted" if v.ok else "rejected", reason=None if v.ok else str(v.rejection),
                context=context, raw_response=p.raw if isinstance(p.raw, str) else json.dumps(p.raw),
                parsed=v.decision.model_dump() if v.decision else None, attempt=n,
                prompt_version=p.prompt_version, prompt_hash=p.prompt_hash, latency_s=p.latency_s,
                prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens)
            if v.ok:
                return v.recipe, did, label
            self.reporter.rejected(parent.id, label, str(v.rejection))
        return None

    # prefetching (slow managers) --------------------------------------------------
    def _speculate(self, training: Node) -> None:
        """While ``training`` trains, ask for the parents UCT will likely select once it finishes."""
        cfg = self.config
        nodes = self.nodes()
        self._drop_outdated(nodes)
        if any(n.status in (NodeStatus.PENDING, NodeStatus.INTERRUPTED) and n.id != training.id for n in nodes):
            return  # unfinished nodes come first
        if T.fixed_path(nodes)[-1].depth < cfg.max_depth:
            return  # the fixed path is still growing: no proposal needed next
        used_after = T.steps_used(nodes) - training.steps_trained + (training.end_step - training.start_step)
        if used_after + cfg.segment_steps > cfg.budget.steps:
            return
        if cfg.budget.nodes is not None and sum(n.depth > 0 and n.status.finished for n in nodes) + 1 >= cfg.budget.nodes:
            return
        index = T.by_id(nodes)
        parent = index[training.parent_id]
        candidates = likely_parents(self._view(nodes), training.id, c=cfg.uct.c, k_max=cfg.uct.k_max,
                                    max_depth=cfg.max_depth, parent_utility=parent.utility)
        for pid in candidates[:self.prefetch.width]:
            children = tuple(c.id for c in T.children(nodes, pid))
            if self.prefetch.has(pid, children):
                continue
            old = self.prefetch.pop(pid)
            if old is not None:
                self._record_stale(old, "its parent gained a child since it was requested")
            self.prefetch.submit(self.context(index[pid], nodes), children)

    def _prefetched(self, parent: Node, ctx: ProposalContext) -> tuple[Attempt, ...] | None:
        """The prepared attempts for ``parent`` if still valid (waiting for them if in flight), else None."""
        prepared = self.prefetch.pop(parent.id)
        if prepared is None:
            return None
        children = tuple(s.node_id for s in ctx.siblings)
        if prepared.children != children:
            self._record_stale(prepared, "its parent gained a child since it was requested")
            return None
        attempts = prepared.future.result()  # blocks only if the answer is still on its way
        last = attempts[-1]
        if last.verdict is not None and last.verdict.ok:
            again = verify(last.proposal.raw, self.task.surface, parent.recipe, [s.recipe for s in ctx.siblings])
            if not again.ok:
                self._record_stale(prepared, f"no longer valid for the current siblings ({again.rejection})")
                return None
        self.prefetch.used += 1
        return attempts

    def _drop_outdated(self, nodes: list[Node]) -> None:
        view = self._view(nodes)
        usable = {n.id for n in view.nodes.values() if n.expandable}
        children_of = {nid: kids for nid, kids in view.children.items()}
        for p in self.prefetch.outdated(children_of, usable):
            self._record_stale(p, "its parent changed or can no longer be expanded")

    def _record_stale(self, prepared: Prepared, why: str) -> None:
        """Log a dropped prefetched request (every attempt of it) with verdict ``stale``."""
        label = self.manager.name
        if not prepared.future.done() or prepared.future.cancelled():
            self.store.add_decision(self.search_id, prepared.parent_id, DecisionKind.MANAGER, label, verdict="stale",
                                    reason=f"stale: {why}; dropped while the request was still in flight",
                                    context={**prepared.ctx.to_dict(), "prefetched": True})
            return
        for n, a in enumerate(prepared.future.result()):
            if a.proposal is None:
                self.store.add_decision(self.search_id, prepared.parent_id, DecisionKind.MANAGER, label,
                                        verdict="stale", reason=f"stale: {why}; manager error: {a.error}",
                                        context={**prepared.ctx.to_dict(), "prefetched": True}, attempt=n,
                                        latency_s=a.error_latency_s)
                continue
            p, v = a.proposal, a.verdict
            said = "admitted" if v.ok else f"rejected ({v.rejection})"
            self.store.add_decision(
                self.search_id, prepared.parent_id, DecisionKind.MANAGER, label, verdict="stale",
                reason=f"stale: {why}; the verifier had {said}",
                context={**(p.request or prepared.ctx.to_dict()), "prefetched": True},
                raw_response=p.raw if isinstance(p.raw, str) else json.dumps(p.raw),
                parsed=v.decision.model_dump() if v.decision else None, attempt=n,
                prompt_version=p.prompt_version, prompt_hash=p.prompt_hash, latency_s=p.latency_s,
                prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens)

    # training -------------------------------------------------------------------
    def _train(self, node: Node) -> float:
        """Train one node to its end (or until pruned) and record it; returns seconds spent training."""
        cfg, objective = self.config, self.task.objective
        nodes = self.nodes()
        parent = T.by_id(nodes)[node.parent_id]
        state = self._load(parent)
        self.store.start_node(node.id)
        decision = self.store.decision(node.decision_id).parsed if node.decision_id else None
        self.reporter.node_started(node, node.source, (decision or {}).get("diagnosis"))
        segment = Segment(node.start_step, node.end_step - node.start_step, cfg.horizon, cfg.eval_every)
        prunable = node.source != T.FIXED
        best_here = T.best_at_depth(nodes, objective, node.depth)
        best_all = T.best_leaf(nodes, objective, cfg.max_depth)
        min_step = node.start_step + math.ceil(cfg.stopper.min_fraction * segment.steps)
        trajectory: list[tuple[int, float]] = []
        used_before = T.steps_used(nodes) - node.steps_trained
        callback_s = 0.0

        def on_eval(step: int, metrics: dict[str, float]) -> bool:
            nonlocal callback_s
            t0 = time.perf_counter()
            self.store.add_metrics(node.id, step, metrics, step - node.start_step)
            self.reporter.evaluated(node, step, metrics, used_before + step - node.start_step)
            stop = False
            if prunable and objective.metric in metrics and step < node.end_step:
                trajectory.append((step, metrics[objective.metric]))
                ctx = StopContext(node.id, node.depth, step, node.start_step, node.end_step, min_step, objective,
                                  tuple(trajectory), best_here, best_all.val_score if best_all else None)
                verdict = self.stopper.should_stop(ctx)
                stop = verdict.stop and step >= min_step
                if verdict.stop or verdict.record:
                    self.store.add_decision(
                        self.search_id, node.id, DecisionKind.STOPPER, self.stopper.name,
                        verdict="stop" if stop else "continue", reason=verdict.reason,
                        context=verdict.trace.get("context") or ctx.to_dict(),
                        raw_response=verdict.trace.get("raw"), latency_s=verdict.trace.get("latency_s"),
                        prompt_version=verdict.trace.get("prompt_version"),
                        prompt_hash=verdict.trace.get("prompt_hash"), applied=stop,
                        prompt_tokens=verdict.trace.get("prompt_tokens"),
                        completion_tokens=verdict.trace.get("completion_tokens"))
            callback_s += time.perf_counter() - t0
            return stop

        t0 = time.perf_counter()
        try:
            result = self.task.train_segment(state, node.recipe, segment, on_eval)
        except Exception as e:  # a crashing segment fails its node, loudly, and the search goes on
            spent = time.perf_counter() - t0 - callback_s
            error = f"{type(e).__name__}: {e}"
            self.store.add_event(self.search_id, "failed", error, node_id=node.id,
                                 data={"traceback": traceback.format_exc()})
            self._finish(node, NodeStatus.FAILED, None, None, self.store.node(node.id).steps_trained, spent,
                         error=error)
            if isinstance(e, TaskContractError):  # a broken plug-in: stop at its first bad segment
                raise
            return spent
        spent = time.perf_counter() - t0 - callback_s
        val = result.metrics.get(objective.metric)
        test = None if result.stopped else result.metrics.get(objective.test_metric)
        if result.stopped:
            self._finish(node, NodeStatus.PRUNED, val, None, result.steps_done, spent, metrics=result.metrics)
        elif val is None or not math.isfinite(val):
            self._finish(node, NodeStatus.FAILED, None, None, result.steps_done, spent,
                         error=f"diverged: final {objective.metric}={val}")
        else:
            ref = sha = None
            if node.depth < cfg.max_depth:  # leaves at the horizon are never parents: no checkpoint needed
                if result.checkpoint is None:
                    raise RuntimeError(f"task {self.task.name} returned no checkpoint for a finished segment")
                ref, sha = self._save(node.id, result.checkpoint)
            self._finish(node, NodeStatus.DONE, val, test, result.steps_done, spent, ref, sha, metrics=result.metrics)
        return spent

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
        backup = uct.backup(self._view(nodes), node.id, backed) if backed is not None else None
        self.store.finish_node(node.id, status, val_score=val, test_score=test, utility=utility,
                               steps_trained=steps, train_s=train_s, checkpoint=ref, checkpoint_sha256=sha,
                               error=error, backup=backup)
        nodes = self.nodes()
        best = T.best_leaf(nodes, self.task.objective, self.config.max_depth)
        done = sum(n.depth > 0 and n.status.finished for n in nodes)
        self.reporter.node_finished(self.store.node(node.id), best.val_score if best else None,
                                    T.steps_used(nodes), done)

    def close(self) -> None:
        if self.prefetch is not None:
            self.prefetch.close()
        self.manager.close()
        self.fallback.close()
        self.stopper.close()
        self.store.close()


def explore(overrides: Sequence[str] | Mapping[str, Any] = (), resume: str | Path | None = None,
            reporter: Reporter | None = None, task: Task | None = None) -> Outcome:
    """Run (or continue) a search; the Python twin of ``searchmgr explore``.

    ``overrides`` are ``key=value`` words or an already nested mapping. With
    ``resume``, only budget, manager, stopper and uct settings may change.
    ``task`` is a ready Task instance instead of ``task=<name or reference>``
    (resume re-imports its class, or takes the same instance again).
    """
    data = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    if task is not None:
        data["task"] = reference_of(task)
    if resume is not None:
        search = Search.resume(Path(resume), data, reporter, task)
    else:
        if data.get("manager", {}).get("name") == "replay" and data.get("manager", {}).get("replay"):
            from searchmgr.managers.replay import replay_config

            data = replay_config(data)  # the original run's task, seed, budget ...; overrides win
        if "task" not in data:
            raise ConfigError("which task? add task=<name>; see `searchmgr tasks`")
        search = Search.create(build_config(data), reporter, task)
    try:
        return search.run()
    except KeyboardInterrupt:
        ids = search.store.interrupt_running(search.search_id)
        search.store.add_event(search.search_id, "interrupted", f"stopped by the user; nodes {ids} interrupted")
        raise
    finally:
        search.close()
