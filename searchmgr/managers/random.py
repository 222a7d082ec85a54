"""``random``: random bounded updates within each knob's step limit (the search baseline).

Deterministic given the search seed, the parent and the attempt, so a run replays.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from searchmgr.decision import AuditEntry, Decision
from searchmgr.managers.base import Manager, Proposal, ProposalContext
from searchmgr.managers.heuristic import Move, knob_update


class RandomManager(Manager):
    name = "random"

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        key = f"{ctx.seed}:{ctx.parent_id}:{len(ctx.siblings)}:{len(feedback)}"
        rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        chosen = rng.sample(ctx.surface.names, k=rng.randint(1, len(ctx.surface.names)))
        updates = []
        for name in chosen:
            u = knob_update(ctx.surface[name], ctx.parent_recipe[name],
                            Move(name, rng.choice((1, -1)), rng.uniform(0.2, 1.0)))
            if u is not None:
                updates.append(u)
        picked = {u.knob for u in updates}
        decision = Decision(
            diagnosis="random exploration (no telemetry read)",
            control_audit=[AuditEntry(knob=n, verdict="selected" if n in picked else "deferred",
                                      reason="drawn at random" if n in picked else "not drawn")
                           for n in ctx.surface.names],
            updates=updates,
            expected_outcome="unknown",
            watch_items=[],
        )
        return Proposal(raw=decision.model_dump(), source=self.name)
