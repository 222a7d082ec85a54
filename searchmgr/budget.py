"""A run's step budget: spent, committed to segments in flight, and left.

One object every policy and the coordinator ask, so they count alike: a segment in an
executor's hands, or unfinished (pending, interrupted: it will be retrained), is committed
at its full length; a finished one counts the steps it trained (a pruned segment gives
back what it did not train). :meth:`Budget.can_finish` answers "can a chain started now
still finish?", counting the steps that chains already started still owe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Sequence

from searchmgr.store import Node, NodeStatus

UNFINISHED = (NodeStatus.PENDING, NodeStatus.INTERRUPTED)  # to be (re)trained: committed at full length


@dataclass(frozen=True)
class Budget:
    total: int
    spent: int  # steps trained by finished segments
    committed: int  # steps of segments in flight or unfinished, at their full length

    @classmethod
    def of(cls, nodes: Sequence[Node], total: int, in_flight: AbstractSet[int] = frozenset()) -> "Budget":
        spent = committed = 0
        for n in nodes:
            if n.id in in_flight or n.status in UNFINISHED:
                committed += n.end_step - n.start_step
            else:
                spent += n.steps_trained
        return cls(total, spent, committed)

    @classmethod
    def left_of(cls, left: int) -> "Budget":
        """A budget known only by the steps it has left (a policy's tests build one so)."""
        return cls(left, 0, 0)

    @property
    def used(self) -> int:
        """Spent or committed."""
        return self.spent + self.committed

    @property
    def left(self) -> int:
        """Neither spent nor committed."""
        return self.total - self.used

    def can_finish(self, steps: int, owed: int = 0) -> bool:
        """Can a chain of ``steps`` more steps, started now, still finish once chains already started have
        trained the ``owed`` steps they still need?"""
        return self.left - owed >= steps
