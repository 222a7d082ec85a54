"""What to train next: search policies over a snapshot of the tree.

* :mod:`~searchmgr.policies.base` — the :class:`Policy` interface (its contract in the class
  docstring), the plan types (:class:`Retry`, :class:`Grow`, :class:`Expand`, :class:`Wait`,
  :class:`Exhausted`), :func:`view` and :func:`retry`;
* :mod:`~searchmgr.policies.uct` — the tree search and its rules (start design, hold-first,
  finish, widening), each a small piece the config switches on;
* one file per baseline: :mod:`~searchmgr.policies.grid`, :mod:`~searchmgr.policies.random`,
  :mod:`~searchmgr.policies.tpe` (Optuna), :mod:`~searchmgr.policies.hyperband` (Optuna's TPE with its
  HyperbandPruner), :mod:`~searchmgr.policies.asha`, :mod:`~searchmgr.policies.pbt`,
  :mod:`~searchmgr.policies.pb2`; the constant-recipe chains they share are in
  :mod:`~searchmgr.policies.chains`.

:func:`make_policy` builds the one ``policy.name`` names from :data:`REGISTRY` (name -> a
module's ``build(config, task)``). Nothing here touches the store.
"""

from __future__ import annotations

from typing import Callable

from searchmgr.policies import asha, grid, hyperband, pb2, pbt, random, tpe, uct
from searchmgr.policies.base import (UNFINISHED, Exhausted, Expand, Grow, Plan, Policy, Retry, Wait, retry,
                                     view)
from searchmgr.policies.uct import FINISH, HOLD, START, UCTPolicy, finish, plan

REGISTRY: dict[str, Callable[..., Policy]] = {
    "uct": uct.build,
    "grid": grid.build,
    "random": random.build,
    "tpe": tpe.build,
    "hyperband": hyperband.build,
    "asha": asha.build,
    "pbt": pbt.build,
    "pb2": pb2.build,
}
POLICIES = tuple(REGISTRY)


def make_policy(config, task) -> Policy:
    """The policy ``config.policy.name`` names, for ``task`` (its settings were checked by the config)."""
    return REGISTRY[config.policy.name](config, task)


__all__ = ["FINISH", "HOLD", "POLICIES", "REGISTRY", "START", "UNFINISHED", "Exhausted", "Expand", "Grow", "Plan",
           "Policy", "Retry", "UCTPolicy", "Wait", "finish", "make_policy", "plan", "retry", "view"]
