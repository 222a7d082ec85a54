"""Managers: proposers of child recipes behind one interface, looked up by name."""

from __future__ import annotations

import importlib

from searchmgr.managers.base import Manager, ManagerError, PathStep, Proposal, ProposalContext, Sibling

REGISTRY: dict[str, str] = {
    "heuristic": "searchmgr.managers.heuristic:HeuristicManager",
    "random": "searchmgr.managers.random:RandomManager",
    "openai": "searchmgr.managers.llm:LLMManager",
    "replay": "searchmgr.managers.replay:ReplayManager",
}


def manager_names() -> list[str]:
    return list(REGISTRY)


def manager_class(name: str) -> type[Manager]:
    if name not in REGISTRY:
        raise KeyError(f"unknown manager {name!r}; choose one of {manager_names()}")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["Manager", "ManagerError", "PathStep", "Proposal", "ProposalContext", "Sibling", "REGISTRY", "manager_names",
           "manager_class"]
