"""What the choosers among the model's ranked candidates share (``model_llm``, ``model_random``).

The model manager (:mod:`searchmgr.managers.model`) ranks candidate children by a GP
fitted on the run's evidence. A *chooser* is shown its top ``k`` (ids 1..k, in the
model's order: id 1 is the model's own pick) and picks one; the child is that
candidate's recipe, written as a decision by :func:`searchmgr.managers.model.decision_for`.
The trace's ``chooser`` entry records the candidates shown, the choice, how the model
ranked it and the reason; ``evidence`` is the model's record for the chosen candidate.
With too little evidence for a ranking, every chooser takes the model's prior (the
heuristic's answer), so a chooser and the model alone differ only where a choice exists.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any, Mapping, Sequence

from searchmgr.managers.base import Proposal, ProposalContext
from searchmgr.managers.model import ModelManager, Ranking, decision_for
from searchmgr.sanitize import cap
from searchmgr.surface import ActionSurface, Scale

SOURCE_CHARS = 100  # a candidate's source as shown in prompts and traces


def change_text(surface: ActionSurface, parent: Mapping[str, float], recipe: Mapping[str, float]) -> str:
    """A candidate's change per knob, e.g. ``lr x1.25 (0.001 -> 0.00125), dropout +0.05 (0.1 -> 0.15)``."""
    out = []
    for k in surface.knobs:
        old, new = parent[k.name], recipe[k.name]
        if math.isclose(old, new, rel_tol=1e-12, abs_tol=1e-15):
            continue
        step = f"x{new / old:.3g}" if k.scale is Scale.LOG and old != 0 else f"{new - old:+.3g}"
        out.append(f"{k.name} {step} ({old:.4g} -> {new:.4g})")
    return ", ".join(out) or "no change (hold the current recipe)"


def candidate_rows(ctx: ProposalContext, ranking: Ranking, k: int) -> list[dict]:
    """The model's top ``k`` candidates as the chooser sees them (id = the model's rank)."""
    return [{"id": i + 1, "recipe": dict(r.candidate.recipe),
             "change": change_text(ctx.surface, ctx.parent_recipe, r.candidate.recipe),
             "predicted": r.predicted, "sd": r.sd, "source": cap(r.candidate.source, SOURCE_CHARS)}
            for i, r in enumerate(ranking.ranked[:k])]


def chosen(ctx: ProposalContext, ranking: Ranking, i: int, *, source: str, reason: str,
           chooser: Mapping[str, Any], **proposal: Any) -> Proposal:
    """The proposal of candidate ``i`` (0-based model rank) with its trace; ``proposal`` adds the request's
    latency, tokens and prompt fields."""
    diagnosis = f"{source} chose candidate {i + 1}: {reason} | {ranking.diagnosis(ctx, i)}"
    decision = decision_for(ctx, ranking.ranked[i].candidate, diagnosis, ranking.expected(ctx, i))
    request = {**ctx.to_dict(), **proposal.pop("request", {}), "evidence": ranking.evidence(i),
               "chooser": {**chooser, "choice": i + 1, "model_rank": i + 1, "reason": reason, "valid": True}}
    return Proposal(raw=decision.model_dump(), source=source, request=request, **proposal)


def prior(model: ModelManager, ctx: ProposalContext, feedback: Sequence[str], source: str) -> Proposal:
    """Too little evidence for a ranking: the model's own answer (its prior, the heuristic), traced as such."""
    p = model.propose(ctx, feedback)
    request = {**(p.request or ctx.to_dict()),
               "chooser": {"name": source, "choice": None, "fallback": "the model's prior: too little evidence for a "
                           "ranking, nothing to choose among"}}
    return Proposal(raw=p.raw, source=source, request=request)


def seeded(*parts: Any) -> random.Random:
    """A generator seeded by ``parts`` (the search seed, the parent, the attempt): a run replays."""
    key = ":".join(map(str, parts))
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
