"""A person's commands (from the service) and how the search applies them.

The service only *queues* commands in the store's ``commands`` table; the search
process alone turns them into tree changes, at the top of every iteration of the
coordinator's loop, by calling :func:`apply_commands`:

* ``child``: a recipe for a new child of a trained node, handed to the coordinator
  (``grow``, :meth:`searchmgr.coordinator.Coordinator.person_child`), which creates it
  where it creates every node: verified again against the tree as it is now
  (:func:`person_decision`, the manager's verifier), its decision traced, a PENDING
  node with ``source="human"``; the policy retries unfinished nodes first. A human
  child may go beyond ``uct.k_max``. This module writes no node and no decision.
* ``pause`` / ``resume``: while paused nothing new starts; segments in training
  finish, then the loop waits, polling the store, until a resume or stop arrives (or a
  signal: :mod:`searchmgr.signals`).
* ``stop``: nothing new starts (nodes asked ahead included); the search ends once the
  segments in training finish. Commands queued after it are answered ``moot``.
* ``close``: every node of the subtree is closed in the store (``closed`` rows), so
  no policy expands it again (queued human children in it are still trained).

Pause, resume and stop set the run's state in the store (:class:`searchmgr.store.RunState`:
paused, running, stopping) and are logged as events, so every reader of the store (the
service included) sees the same state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from searchmgr.errors import UserError
from searchmgr.decision import (
    AuditEntry, Decision, KnobUpdate, Rejection, RejectionKind, Verification, update_between, verify,
)
from searchmgr.progress import Reporter
from searchmgr.recorder import Trace
from searchmgr.store import (
    CommandKind, CommandRecord, CommandStatus, DecisionKind, DecisionVerdict, EventKind, Node, NodeStatus, RunState,
    TreeStore,
)
from searchmgr.surface import ActionSurface

HUMAN = "human"  # the source of nodes a person proposed
NOTE_MAX_CHARS = 2000


class CommandError(UserError, ValueError):
    """A command that cannot apply to the run as it stands (unknown node, nothing to branch from ...)."""


@dataclass(frozen=True)
class CommandEffects:
    """What the loop must do after :func:`apply_commands`."""

    stop: str | None = None  # why the search must stop, when a stop command was applied
    paused: bool = False  # start nothing new (only when called with ``wait=False``)
    children: tuple[int, ...] = ()  # human children created by this call (pending nodes)


@dataclass(frozen=True)
class ChildRequest:
    """A person's child as a queued command asks for it."""

    command_id: int
    parent_id: int
    recipe: Mapping[str, Any]  # a missing knob keeps the parent's value
    note: str = ""

    def context(self) -> dict[str, Any]:
        """What the decision's trace keeps of the request."""
        return {"command_id": self.command_id, "note": self.note[:NOTE_MAX_CHARS], "requested": dict(self.recipe)}


Grow = Callable[[ChildRequest], "Node | str"]  # the coordinator's: the child created, or why it is refused


def human_decision(surface: ActionSurface, parent: Mapping[str, float], recipe: Mapping[str, Any],
                   note: str = "") -> Decision | Rejection:
    """A person's recipe as a :class:`Decision` of updates from ``parent``; a missing knob keeps the parent's
    value. Values that are not numbers are a :class:`Rejection` here; everything else is the verifier's job."""
    updates, audit = [], []
    for name, value in recipe.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return Rejection(RejectionKind.MALFORMED_JSON, f"{name}: {value!r} is not a finite number")
        if name not in surface:  # the verifier names the knobs
            updates.append(KnobUpdate(knob=name, op="add", value=0.0))
            continue
        update = update_between(surface[name], parent[name], value)
        if update is None:
            continue
        updates.append(update)
        audit.append(AuditEntry(knob=name, verdict="selected", reason="set by a person"))
    changed = {u.knob for u in updates}
    audit += [AuditEntry(knob=n, verdict="deferred", reason="kept from the parent") for n in surface.names
              if n not in changed]
    text = note.strip() or "a person's manual child"
    return Decision(diagnosis=text, control_audit=audit, updates=updates,
                    expected_outcome="as the person who proposed it expects" + (f": {text}" if note.strip() else ""),
                    watch_items=[])


def verify_child(surface: ActionSurface, parent: Node, siblings: Sequence[Mapping[str, float]],
                 recipe: Mapping[str, Any], note: str = "", *, max_depth: int) -> tuple[Verification, list[str]]:
    """Verify a person's child of ``parent``: the verdict and every reason against it (one per bad knob,
    then the whole recipe's), so a form can show them all at once. Raises :class:`CommandError` when
    ``parent`` cannot have children at all."""
    if parent.depth >= max_depth:
        raise CommandError(f"node {parent.id} is at the horizon (depth {parent.depth} = max_depth); "
                           "choose a node above it")
    if parent.status is not NodeStatus.DONE or parent.checkpoint is None:
        raise CommandError(f"node {parent.id} is {parent.status.value} without a checkpoint; only a segment "
                           "trained to its end can have children")
    return verify_change(surface, parent.recipe, recipe, note, siblings)


def verify_change(surface: ActionSurface, current: Mapping[str, float], recipe: Mapping[str, Any], note: str = "",
                  siblings: Sequence[Mapping[str, float]] = ()) -> tuple[Verification, list[str]]:
    """Verify a person's recipe against ``current`` (a parent's recipe, or a supervised run's segment in
    training): the verdict and every reason against it (one per bad knob, then the whole recipe's)."""
    decision = human_decision(surface, current, recipe, note)
    if isinstance(decision, Rejection):
        return Verification(None, None, decision), [str(decision)]
    verdict = verify(decision, surface, current, siblings)
    if verdict.ok:
        return verdict, []
    reasons = []
    for u in decision.updates:  # each knob alone, so the person sees every problem
        alone = verify(decision.model_copy(update={"updates": [u]}), surface, current)
        if not alone.ok and alone.rejection.kind is not RejectionKind.CONSTRAINT:
            reasons.append(str(alone.rejection))
    if str(verdict.rejection) not in reasons:
        reasons.append(str(verdict.rejection))
    return verdict, reasons


def person_decision(surface: ActionSurface, parent: Node, siblings: Sequence[Mapping[str, float]],
                    request: ChildRequest, *, max_depth: int) -> tuple[Trace, dict[str, float] | None]:
    """A person's child of ``parent`` verified against the tree as it is now: the trace of its decision
    (accepted, or rejected with every reason) and the child's recipe when accepted (else None)."""
    try:
        verdict, reasons = verify_child(surface, parent, siblings, request.recipe, request.note, max_depth=max_depth)
    except CommandError as e:
        verdict, reasons = None, [str(e)]
    parsed = verdict.decision.model_dump() if verdict is not None and verdict.decision is not None else None
    if verdict is None or not verdict.ok:
        return Trace(DecisionKind.MANAGER, HUMAN, parent.id, DecisionVerdict.REJECTED, reason="; ".join(reasons),
                     context=request.context(), parsed=parsed,
                     rejection=verdict.rejection.kind.value if verdict is not None else None), None
    return Trace(DecisionKind.MANAGER, HUMAN, parent.id, DecisionVerdict.ACCEPTED, context=request.context(),
                 parsed=parsed), verdict.recipe


def subtree(nodes: Sequence[Node], node_id: int) -> set[int]:
    out, frontier = {node_id}, [node_id]
    while frontier:
        kids = [n.id for n in nodes if n.parent_id in frontier]
        out.update(kids)
        frontier = kids
    return out


def is_paused(store: TreeStore, search_id: int) -> bool:
    return store.run_state(search_id)[0] is RunState.PAUSED


def settle_moot(store: TreeStore, search_id: int, why: str,
                kinds: tuple[CommandKind, ...] = tuple(CommandKind)) -> list[CommandRecord]:
    """Answer every queued command of ``kinds`` as moot (the run stopped or ended before it could apply them)."""
    moot = [c for c in store.commands(search_id, CommandStatus.QUEUED) if c.kind in kinds]
    for cmd in moot:
        store.settle_command(cmd.id, CommandStatus.MOOT, f"{why} before it could apply this {cmd.kind.value}")
    return moot


def apply_commands(store: TreeStore, search_id: int, reporter: Reporter | None = None, *, grow: Grow,
                   wait: bool = True, poll_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                   stopped: str | None = None, signalled: Callable[[], str | None] = lambda: None) -> CommandEffects:
    """Apply every queued command in order; a person's child is created by ``grow`` (the coordinator's).
    While the search is paused and ``wait`` (nothing in training), wait, polling the store every ``poll_s``,
    until a resume or stop command (or a signal: ``signalled()`` says why) arrives; without ``wait``, say
    ``paused``. Once the run is ``stopped`` (why), or a stop applies, the commands still queued are answered
    moot. Called by the coordinator's loop only."""
    reporter = reporter or Reporter()
    stop, children, waited = None, [], False
    while True:
        for cmd in store.commands(search_id, CommandStatus.QUEUED):
            if stopped or stop:
                settle_moot(store, search_id, f"the run is stopping ({stopped or stop})")
                break
            with store.atomic():  # a command applies entirely or not at all
                status, result, child = _apply(store, search_id, cmd, grow)
                store.settle_command(cmd.id, status, result, child)
            reporter.message(f"command {cmd.id} ({cmd.kind.value}) {status.value}: {result}")
            if child is not None:
                children.append(child)
            if cmd.kind is CommandKind.STOP and status is CommandStatus.APPLIED:
                stop = f"stopped by command {cmd.id} from the service"
        stop = stop or (None if stopped else signalled())
        paused = stop is None and is_paused(store, search_id)
        if not paused or not wait:
            break
        if not waited:
            reporter.message("paused: waiting for a resume or stop command")
            waited = True
        sleep(poll_s)
    _close_subtrees(store, search_id)
    return CommandEffects(stop, paused, tuple(children))


def _close_subtrees(store: TreeStore, search_id: int) -> None:
    """Close every node under an applied close command, including those added since (a person's children)."""
    closes = [c for c in store.commands(search_id, CommandStatus.APPLIED) if c.kind is CommandKind.CLOSE]
    if not closes:
        return
    nodes, closed = store.nodes(search_id), store.closed(search_id)
    for cmd in closes:
        for nid in sorted(subtree(nodes, cmd.node_id) - closed):
            store.close_node(search_id, nid, f"subtree of node {cmd.node_id} closed by command {cmd.id}")
            closed |= {nid}


def pause_or_resume(store: TreeStore, search_id: int, cmd: CommandRecord, *, at: str = "",
                    node_id: int | None = None) -> tuple[CommandStatus, str]:
    """A pause or resume command: the run's state and its event (``at`` says where it applied, e.g.
    ``" at step 40"``, of ``node_id``), or why it is refused. The search's loop and a supervised run share it."""
    state = store.run_state(search_id)[0]
    pause = cmd.kind is CommandKind.PAUSE
    if pause and state is RunState.PAUSED:
        return CommandStatus.REJECTED, "the run is already paused"
    if not pause and state is not RunState.PAUSED:
        return CommandStatus.REJECTED, f"the run is {state.value}, not paused"
    done = "paused" if pause else "resumed"
    store.set_run_state(search_id, RunState.PAUSED if pause else RunState.RUNNING, f"{done} by command {cmd.id}")
    store.add_event(search_id, EventKind.PAUSED if pause else EventKind.UNPAUSED, f"{done} by command {cmd.id}{at}",
                    node_id=node_id)
    return CommandStatus.APPLIED, f"{done}{at}"


def _apply(store: TreeStore, search_id: int, cmd: CommandRecord, grow: Grow) -> tuple[CommandStatus, str, int | None]:
    """One command: ``(status, what happened, child id)``."""
    if cmd.kind in (CommandKind.PAUSE, CommandKind.RESUME):
        return *pause_or_resume(store, search_id, cmd), None
    if cmd.kind is CommandKind.STOP:
        store.set_run_state(search_id, RunState.STOPPING, f"stop command {cmd.id}")
        return CommandStatus.APPLIED, "the search stops", None
    if cmd.node_id not in {n.id for n in store.nodes(search_id)}:
        return CommandStatus.REJECTED, f"node {cmd.node_id} is not in this search", None
    if cmd.kind is CommandKind.CLOSE:
        store.add_event(search_id, EventKind.CLOSED_SUBTREE,
                        f"subtree of node {cmd.node_id} closed by command {cmd.id}",
                        node_id=cmd.node_id)
        return CommandStatus.APPLIED, f"subtree of node {cmd.node_id} closed", None
    payload = cmd.payload if isinstance(cmd.payload, dict) else {}
    recipe, note = payload.get("recipe"), payload.get("note") or ""
    if not isinstance(recipe, dict) or not isinstance(note, str):
        return CommandStatus.REJECTED, "the command holds no recipe object", None
    child = grow(ChildRequest(cmd.id, cmd.node_id, recipe, note))
    if isinstance(child, str):
        return CommandStatus.REJECTED, child, None
    return CommandStatus.APPLIED, f"node {child.id} queued for training", child.id
