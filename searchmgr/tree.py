"""Pure queries over a snapshot of a run's nodes: paths, the fixed path, the best schedule."""

from __future__ import annotations

import enum
import math
from typing import Mapping, Sequence

from searchmgr.store import Node, NodeStatus
from searchmgr.objective import Objective

FIXED = "fixed"
ROOT = "root"
SUPERVISED = "supervised"  # the first segment of a supervised run (the base recipe, before any decision)


class NodeRole(str, enum.Enum):
    """Why a node is in the tree. The stored ``source`` stays readable (the manager's or policy's name, which
    the traces name too); the role is what it comes down to (:func:`role_of`)."""

    ROOT = "root"  # the untrained model under the base recipe
    FIXED = "fixed"  # the base recipe held: the run's own fixed baseline
    START = "start"  # a start point placed by the start design (uct.start=anywhere)
    HOLD = "hold"  # its parent's recipe continued (uct.hold_first, uct.finish, a supervised run's first segment)
    PROPOSED = "proposed"  # a manager's verified proposal (its fallback's too)
    HUMAN = "human"  # a person's child, from the service
    BASELINE = "baseline"  # chosen by a baseline policy (grid, random, tpe, pbt ...)


_ROLES = {ROOT: NodeRole.ROOT, FIXED: NodeRole.FIXED, "start": NodeRole.START, "hold": NodeRole.HOLD,
          "finish": NodeRole.HOLD, SUPERVISED: NodeRole.HOLD, "human": NodeRole.HUMAN}


def role_of(node: Node, *, baseline: bool = False) -> NodeRole:
    """A node's role from its stored source; ``baseline``: the run's policy is a baseline (its chains' sources
    are the policy's name)."""
    known = _ROLES.get(node.source)
    if known is not None:
        return known
    return NodeRole.BASELINE if baseline else NodeRole.PROPOSED


def by_id(nodes: Sequence[Node]) -> dict[int, Node]:
    return {n.id: n for n in nodes}


def children(nodes: Sequence[Node], node_id: int) -> list[Node]:
    return [n for n in nodes if n.parent_id == node_id]


def root(nodes: Sequence[Node]) -> Node:
    return next(n for n in nodes if n.parent_id is None)


def path_to(nodes: Sequence[Node], node_id: int) -> list[Node]:
    """Root-to-node path, root first."""
    index = by_id(nodes)
    out = [index[node_id]]
    while out[-1].parent_id is not None:
        out.append(index[out[-1].parent_id])
    return out[::-1]


def fixed_path(nodes: Sequence[Node]) -> list[Node]:
    """The all-hold path of the fixed recipe, root first (as far as it has been grown): the fixed children, and
    below the first one any child that holds the same recipe (the endgame's hold of a fixed node is the fixed
    recipe carried on, whatever rule grew it)."""
    out = [root(nodes)]
    while True:
        kids = children(nodes, out[-1].id)
        nxt = [c for c in kids if c.source == FIXED] or \
              [c for c in kids if len(out) > 1 and c.recipe == out[-1].recipe]
        if not nxt:
            return out
        out.append(nxt[0])


def ranked_leaves(nodes: Sequence[Node], objective: Objective, max_depth: int,
                  reevaluated: Mapping[int, float] | None = None) -> list[Node]:
    """Finished segments, best first: only complete schedules when there are any, ordered by :func:`rank_key`.

    A schedule is complete when its last segment has depth ``max_depth`` or ends at the run's horizon (the
    furthest planned end step): a supervised run is a chain split where decisions were applied, so its
    depth is the number of its segments, not ``max_depth``.

    ``reevaluated`` (node id -> mean of fresh evaluations, ``select.reevaluate``) reorders the top of the
    ranking when it covers exactly the current top ``len(reevaluated)`` leaves; a selection made before the
    tree grew further no longer holds and is ignored."""
    done = [n for n in nodes if n.status is NodeStatus.DONE and n.val_score is not None and n.depth > 0]
    horizon = max((n.end_step for n in nodes), default=0)
    complete = [n for n in done if n.depth == max_depth or n.end_step == horizon]
    ranked = sorted(complete or done, key=lambda n: rank_key(n, objective), reverse=True)
    if reevaluated and {n.id for n in ranked[:len(reevaluated)]} == set(reevaluated):
        top = sorted(ranked[:len(reevaluated)], key=lambda n: (objective.utility(reevaluated[n.id]),
                                                               *rank_key(n, objective)), reverse=True)
        ranked = top + ranked[len(reevaluated):]
    return ranked


def best_leaf(nodes: Sequence[Node], objective: Objective, max_depth: int,
              reevaluated: Mapping[int, float] | None = None) -> Node | None:
    """The finished segment with the best validation score, preferring complete schedules (depth == max_depth);
    with ``reevaluated``, the best of the re-evaluated top by its fresh evaluations (see :func:`ranked_leaves`)."""
    ranked = ranked_leaves(nodes, objective, max_depth, reevaluated)
    return ranked[0] if ranked else None


def rank_key(node: Node, objective: Objective) -> tuple[float, float, int]:
    """Order of finished segments, best last: the objective, then the search utility (which holds the
    task's tie-break), then the earlier node."""
    u = node.utility if node.utility is not None else -math.inf
    return objective.utility(node.val_score), u, -node.id


def best_at_depth(nodes: Sequence[Node], objective: Objective, depth: int) -> float | None:
    scores = [n.val_score for n in nodes if n.depth == depth and n.status is NodeStatus.DONE and n.val_score is not None]
    if not scores:
        return None
    return max(scores, key=objective.utility)


def median_at_depth(nodes: Sequence[Node], objective: Objective, depth: int) -> float | None:
    """The median validation score of segments ending at ``depth``: finished ones at their end, pruned ones where
    they were stopped (a lenient reference: a slow starter survives while it beats half of what was tried here)."""
    scores = sorted((n.val_score for n in nodes if n.depth == depth and n.val_score is not None
                     and n.status in (NodeStatus.DONE, NodeStatus.PRUNED)), key=objective.utility)
    if not scores:
        return None
    mid = len(scores) // 2
    return scores[mid] if len(scores) % 2 else (scores[mid - 1] + scores[mid]) / 2


def steps_used(nodes: Sequence[Node]) -> int:
    return sum(n.steps_trained for n in nodes)
