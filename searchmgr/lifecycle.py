"""What state a run is in, as every reader reports it (``show``, the service, ``compare``, ``report``).

The run's owner writes its lifecycle into the store (:class:`searchmgr.store.RunState`);
a reader trusts a *live* state (created, running, paused, stopping) only while some
process holds the run's owner lock (:func:`searchmgr.rundir.owner_of`). A live state
without a live owner means the owner died (SIGKILL, out of memory, a lost machine): the
run reads as :attr:`RunStatus.INTERRUPTED`, with the command that continues it, and the
nodes it left ``running`` read as interrupted. Which commands a run applies follows from
the same view (:meth:`RunView.refusal`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from searchmgr.rundir import Owner, owner_of
from searchmgr.store import CommandKind, Node, NodeStatus, RunState, TreeStore


class RunStatus(str, enum.Enum):
    """A run's state as readers show it: the stored :class:`RunState`, or interrupted (its owner died)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a live state, but no process owns the run any more

    @property
    def live(self) -> bool:
        return self in (RunStatus.CREATED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.STOPPING)

    @property
    def resumable(self) -> bool:
        """``--resume`` continues it (a finished run too, with a larger budget)."""
        return not self.live


# the commands a live run applies in each state (a supervised run: no subtree to close)
_LIVE_COMMANDS = {
    RunStatus.CREATED: (CommandKind.PAUSE, CommandKind.STOP, CommandKind.CHILD, CommandKind.CLOSE),
    RunStatus.RUNNING: (CommandKind.PAUSE, CommandKind.STOP, CommandKind.CHILD, CommandKind.CLOSE),
    RunStatus.PAUSED: (CommandKind.RESUME, CommandKind.STOP, CommandKind.CHILD, CommandKind.CLOSE),
}
# a run nobody owns takes a person's children and closes, applied when it is resumed (explore only)
_QUEUED_FOR_RESUME = (CommandKind.CHILD, CommandKind.CLOSE)
SUPERVISED_COMMANDS = (CommandKind.PAUSE, CommandKind.RESUME, CommandKind.STOP, CommandKind.CHILD)


@dataclass(frozen=True)
class RunView:
    status: RunStatus
    state: RunState  # as stored
    reason: str | None  # why the owner wrote that state (or why the run reads as interrupted)
    supervised: bool
    owner: Owner | None  # the live owner, if any
    run_dir: Path

    @property
    def resume_command(self) -> str:
        return f"searchmgr {'supervise' if self.supervised else 'explore'} --resume {self.run_dir}"

    @property
    def hint(self) -> str | None:
        """How to continue the run, when nobody is running it."""
        if self.status.live:
            return None
        if self.status is RunStatus.FINISHED:
            return f"to train more, raise the budget: `{self.resume_command} budget.steps=N`" \
                if not self.supervised else None
        return f"continue it with `{self.resume_command}`"

    @property
    def accepts(self) -> tuple[CommandKind, ...]:
        """The commands this run applies now (live), or queues for its next resume (children, closes)."""
        if self.status.live:
            return tuple(k for k in _LIVE_COMMANDS.get(self.status, ())
                         if not self.supervised or k in SUPERVISED_COMMANDS)
        return () if self.supervised else _QUEUED_FOR_RESUME

    def refusal(self, kind: CommandKind) -> str | None:
        """Why this run cannot take ``kind`` now (an HTTP 409's reason), or None."""
        if kind in self.accepts:
            return None
        what = f"the run is {self.status.value}" + (f" ({self.reason})" if self.reason else "")
        if self.status is RunStatus.STOPPING:
            return f"{what}: it takes no more commands"
        if self.supervised and self.status.live:
            return (f"{what}; a supervised run applies {', '.join(k.value for k in self.accepts)} "
                    f"now, not {kind.value}")
        if self.status.live:
            return f"{what}; {kind.value} applies to a {'paused' if kind is CommandKind.RESUME else 'running'} run"
        after = f"; {self.hint}" if self.hint else ""
        return f"{what}: nobody is running it to apply {kind.value}{after}"

    def node_status(self, node: Node) -> NodeStatus:
        """A node as readers show it: one left running by a dead owner is interrupted."""
        if node.status is NodeStatus.RUNNING and self.owner is None:
            return NodeStatus.INTERRUPTED
        return node.status

    def line(self) -> str:
        """One line for a terminal: the status, why, and how to continue."""
        text = self.status.value + (f": {self.reason}" if self.reason else "")
        return text + (f"; {self.hint}" if self.hint else "")


def read_run(store: TreeStore, search_id: int, run_dir: Path) -> RunView:
    """The run's state as stored, checked against its owner lock."""
    state, reason = store.run_state(search_id)
    supervised = store.supervision(search_id) is not None
    owner = owner_of(run_dir)
    status = RunStatus(state.value)
    if state.live and owner is None:
        status = RunStatus.INTERRUPTED
        reason = (f"its process ended without stopping it (killed, out of memory or a lost machine) while it was "
                  f"{state.value}")
    return RunView(status, state, reason, supervised, owner, Path(run_dir))
