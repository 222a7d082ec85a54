"""Asking a manager for one child: attempts fed back the verifier's reasons until one is admitted."""

from __future__ import annotations

from dataclasses import dataclass

from searchmgr.decision import Verification, verify
from searchmgr.managers.base import Manager, ManagerError, Proposal, ProposalContext


@dataclass(frozen=True)
class Attempt:
    """One request to a manager and the verifier's verdict (``error`` when the manager could not answer)."""

    proposal: Proposal | None
    verdict: Verification | None
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
