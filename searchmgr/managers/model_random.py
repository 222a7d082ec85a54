"""``model_random``: the control for ``model_llm`` — a uniformly random pick among the model's top ``k``.

It sees exactly what an LLM chooser sees (the model's ranked candidates, ``manager.top_k``
of them) and picks one uniformly at random, seeded by the search seed, the parent and the
attempt (a run replays). Any chooser worth its cost must beat this one; with too little
evidence for a ranking it takes the model's prior, like ``model_llm``.
"""

from __future__ import annotations

from typing import Sequence

from searchmgr.managers.base import Manager, Proposal, ProposalContext
from searchmgr.managers.choice import candidate_rows, chosen, prior, seeded
from searchmgr.managers.model import ModelManager


class ModelRandomManager(Manager):
    name = "model_random"

    def __init__(self, top_k: int = 5, kappa: float = 1.0):
        self.top_k = top_k
        self.model = ModelManager(kappa=kappa)

    @classmethod
    def from_config(cls, config) -> "ModelRandomManager":
        return cls(top_k=config.manager.top_k, kappa=config.manager.kappa)

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        ranking = self.model.ranking(ctx, feedback)
        if ranking is None:
            return prior(self.model, ctx, feedback, self.name)
        k = min(self.top_k, len(ranking.ranked))
        i = seeded("model_random", ctx.seed, ctx.parent_id, len(ctx.siblings), len(feedback)).randrange(k)
        return chosen(ctx, ranking, i, source=self.name, reason=f"uniform random pick among the model's top {k}",
                      chooser={"name": self.name, "top_k": k, "candidates": candidate_rows(ctx, ranking, k)})
