"""``asha``: asynchronous successive halving over constant-recipe chains (Li et al., "A System for Massively
Parallel Hyperparameter Tuning", MLSys 2020; Ray Tune's ``ASHAScheduler`` with one bracket).

Trials are random recipes, the same draws as ``random`` for the same seed (Ray Tune's default search samples
at random). Rungs sit at segment boundaries: ``grace * rf**k`` segments, below the horizon (Ray Tune's
defaults: grace period one segment, reduction factor 4). When a chain finishes the segment that ends at a
rung, it is compared with the chains that reached that rung before it: it continues only if its score is at
least the ``1 - 1/rf`` quantile of theirs (so the first to arrive continues), and otherwise stops there for
good. Free workers take the chains that continue first, then new trials.

Arrival order is the order in which the nodes at a rung finished (:attr:`Node.finished_at`), so every decision
is a pure function of the stored tree and ``--resume`` repeats it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from searchmgr.objective import Objective
from searchmgr.policies.random import RandomPolicy
from searchmgr.store import Node, NodeStatus


def rungs(max_depth: int, *, grace: int, rf: int) -> tuple[int, ...]:
    """The depths (in segments) where chains are compared: ``grace * rf**k`` below ``max_depth``
    (a chain at the horizon ends anyway)."""
    out, depth = [], grace
    while depth < max_depth:
        out.append(depth)
        depth *= rf
    return tuple(out)


def cutoff(recorded: Sequence[float], *, rf: int) -> float | None:
    """The utility a chain needs at a rung: the ``1 - 1/rf`` quantile of those recorded there (None: no one yet)."""
    return float(np.percentile(recorded, (1 - 1 / rf) * 100)) if recorded else None


def promotions(nodes: Sequence[Node], *, objective: Objective, rung_depths: Sequence[int],
               rf: int) -> dict[int, bool]:
    """For every finished node at a rung: whether its chain continues past it.

    Nodes are taken in the order they finished; each is judged against the utilities recorded at its rung
    before it, then recorded (Ray Tune's ``_Bracket.on_result``)."""
    arrived = sorted((n for n in nodes if n.depth in rung_depths and n.status is NodeStatus.DONE
                      and n.val_score is not None), key=lambda n: (n.finished_at or 0.0, n.id))
    recorded: dict[int, list[float]] = {}
    out = {}
    for n in arrived:
        seen = recorded.setdefault(n.depth, [])
        u, bar = objective.utility(n.val_score), cutoff(seen, rf=rf)
        out[n.id] = bar is None or u >= bar
        seen.append(u)
    return out


class ASHAPolicy(RandomPolicy):
    """Random constant-recipe chains, stopped at rungs by asynchronous successive halving."""

    name = "asha"
    source = "asha"

    def __init__(self, surface, max_depth, horizon, seed: int, objective: Objective, *, rf: int = 4,
                 grace: int = 1, base: Mapping[str, float] | None = None):
        super().__init__(surface, max_depth, horizon, seed, base=base)
        self.objective, self.rf, self.grace = objective, rf, grace
        self.rungs = rungs(max_depth, grace=grace, rf=rf)

    def continues(self, tip: Node, nodes: Sequence[Node]) -> bool:
        if tip.depth not in self.rungs:
            return True
        return promotions(nodes, objective=self.objective, rung_depths=self.rungs, rf=self.rf).get(tip.id, False)


def build(config, task) -> ASHAPolicy:
    p = config.policy
    return ASHAPolicy(task.surface, config.max_depth, config.horizon, config.seed, task.objective,
                      rf=p.reduction_factor or 4, grace=p.grace or 1, base=task.base_recipe() if p.base_first else None)
