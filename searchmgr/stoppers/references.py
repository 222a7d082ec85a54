"""What a segment is judged against: a pure function of the tree snapshot the coordinator hands over.

``stopper.reference`` picks the reference (see :class:`searchmgr.config.StopperConfig`):

* ``best``: the best finished segment at the node's depth;
* ``median``: the median of the segments tried there (pruned ones where they stopped);
* ``horizon``: the best complete schedule, reached at its end step (``best`` until one is complete);
* ``rank``: the node's *peers*, the finished segments at its depth with their curves (the reference is
  still the best at its depth, for stoppers that read it).

With ``stopper.noise`` the objective's evaluation noise is pooled over every trajectory of the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from searchmgr import tree as T
from searchmgr.objective import Objective
from searchmgr.stoppers.base import Peer
from searchmgr.store import Node, NodeStatus
from searchmgr.telemetry import noise


@dataclass(frozen=True)
class References:
    best_here: float | None  # the score to beat (StopContext.best_at_depth)
    best_all: float | None  # the best schedule's score so far
    reference_step: int | None  # where best_here was reached, when not at the node's end (horizon)
    noise: float | None  # the objective's evaluation noise over the tree (stopper.noise)
    peers: tuple[Peer, ...]  # finished segments at the node's depth (rank)


def references(node: Node, nodes: Sequence[Node], objective: Objective, *, max_depth: int, reference: str,
               with_noise: bool, series: Mapping[int, Sequence[float]]) -> References:
    """The references of ``node`` about to train; ``series`` is every node's objective values in step order."""
    best_all = T.best_leaf(nodes, objective, max_depth)
    if reference == "horizon" and best_all is not None and best_all.depth == max_depth:
        best_here, step = best_all.val_score, best_all.end_step
    else:  # best or median at the node's depth (horizon too, until a schedule is complete)
        best_here = (T.median_at_depth if reference == "median" else T.best_at_depth)(nodes, objective, node.depth)
        step = None
    peers = tuple(Peer(n.id, tuple(series.get(n.id, ())), n.val_score if n.status is NodeStatus.DONE else None)
                  for n in nodes if n.depth == node.depth and n.id != node.id
                  and n.status in (NodeStatus.DONE, NodeStatus.PRUNED)) if reference == "rank" else ()
    return References(best_here, best_all.val_score if best_all else None, step,
                      noise(list(series.values())) if with_noise else None, peers)
