"""Proposals prepared while a segment trains, so a slow manager (an LLM) never stalls training.

While node ``n`` trains, the search guesses which parents UCT will select once ``n``
has finished (:func:`likely_parents`: selection re-run on the tree as it will look
under a few hypothetical outcomes of ``n``) and asks the manager for each of them in
a worker thread (:class:`Prefetcher`). A prepared proposal is used only if its
parent is really selected later with exactly the children it had when the proposal
was requested (the *sibling key*), and its recipe passes the verifier again against
the parent's current siblings; anything else is recorded as ``stale`` and dropped.

Threads only call the manager and the (pure) verifier: every store read and write
stays on the search's thread.
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from searchmgr import uct
from searchmgr.decision import Verdict, verify
from searchmgr.managers.base import Manager, ManagerError, Proposal, ProposalContext


@dataclass(frozen=True)
class Attempt:
    """One request to a manager and the verifier's verdict (``error`` when the manager could not answer)."""

    proposal: Proposal | None
    verdict: Verdict | None
    error: str | None = None
    error_latency_s: float | None = None


def run_attempts(manager: Manager, ctx: ProposalContext, attempts: int) -> tuple[Attempt, ...]:
    """Ask ``manager`` until the verifier admits a child (feeding back its reasons), at most ``attempts`` times.

    Stops early on a :class:`ManagerError` (the endpoint is unusable: the fallback decides).
    """
    siblings = [s.recipe for s in ctx.siblings]
    feedback: list[str] = []
    out: list[Attempt] = []
    for _ in range(attempts):
        try:
            p = manager.propose(ctx, feedback)
        except ManagerError as e:
            out.append(Attempt(None, None, str(e), getattr(e, "latency_s", None)))
            break
        v = verify(p.raw, ctx.surface, ctx.parent_recipe, siblings)
        out.append(Attempt(p, v))
        if v.ok:
            break
        feedback.append(str(v.rejection))
    return tuple(out)


def likely_parents(view: uct.TreeView, training: int, *, c: float, k_max: int, max_depth: int,
                   parent_utility: float | None) -> list[int]:
    """Parents UCT would select after ``training`` finishes, most likely first.

    Hypotheses for the outcome of ``training``: as good as its parent, as good as the
    best score seen, and as bad as the worst (then also not expandable: pruned or
    failed). A hypothesis under which ``training`` itself would be expanded gives no
    parent (nothing can be proposed for a node before its telemetry exists).
    """
    seen = sorted(n.utility for n in view.nodes.values() if n.utility is not None and math.isfinite(n.utility))
    if not seen:
        hypotheses = [(0.0, True)]
    else:
        middle = parent_utility if parent_utility is not None and math.isfinite(parent_utility) \
            else seen[len(seen) // 2]
        hypotheses = [(middle, True), (seen[-1], True), (seen[0], False)]
    out: list[int] = []
    node = view.nodes[training]
    for utility, ok in hypotheses:
        nodes = dict(view.nodes)
        nodes[training] = dataclasses.replace(node, utility=utility, expandable=ok and node.depth < max_depth)
        hyp = uct.TreeView(nodes, view.children, view.root)
        for nid, (visits, value_sum) in uct.backup(hyp, training, utility).items():
            nodes[nid] = dataclasses.replace(nodes[nid], visits=visits, value_sum=value_sum)
        sel = uct.select(uct.TreeView(nodes, view.children, view.root), c=c, k_max=k_max, max_depth=max_depth)
        if sel is not None and sel.parent != training and sel.parent not in out:
            out.append(sel.parent)
    return out


@dataclass
class Prepared:
    """A proposal requested ahead of time for ``parent_id`` with children ``children``."""

    parent_id: int
    children: tuple[int, ...]
    ctx: ProposalContext
    future: Future
    started: float

    def done(self) -> bool:
        return self.future.done()


class Prefetcher:
    """A small pool of worker threads asking one manager ahead of time (see the module docstring)."""

    def __init__(self, manager: Manager, attempts: int, width: int):
        self.manager = manager
        self.attempts = attempts
        self.width = width
        self.pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="searchmgr-prefetch")
        self.prepared: dict[int, Prepared] = {}
        self.requested = 0
        self.used = 0

    def has(self, parent_id: int, children: Sequence[int]) -> bool:
        p = self.prepared.get(parent_id)
        return p is not None and p.children == tuple(children)

    def in_flight(self) -> int:
        return sum(not p.done() for p in self.prepared.values())

    def submit(self, ctx: ProposalContext, children: Sequence[int]) -> None:
        if ctx.parent_id in self.prepared:
            raise ValueError(f"a proposal for parent {ctx.parent_id} is already prepared; take or drop it first")
        future = self.pool.submit(run_attempts, self.manager, ctx, self.attempts)
        self.prepared[ctx.parent_id] = Prepared(ctx.parent_id, tuple(children), ctx, future, time.perf_counter())
        self.requested += 1

    def pop(self, parent_id: int) -> Prepared | None:
        return self.prepared.pop(parent_id, None)

    def outdated(self, children_of: dict[int, tuple[int, ...]], usable: set[int]) -> list[Prepared]:
        """Remove and return finished entries whose parent changed (new children) or can no longer be expanded."""
        out = []
        for pid, p in list(self.prepared.items()):
            if p.done() and (children_of.get(pid) != p.children or pid not in usable):
                out.append(self.prepared.pop(pid))
        return out

    def drain(self) -> list[Prepared]:
        """Remove and return everything; requests not yet started are cancelled."""
        out = list(self.prepared.values())
        self.prepared.clear()
        for p in out:
            p.future.cancel()
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
