"""Managers: proposers of child recipes behind one interface, looked up by name."""

from __future__ import annotations

from searchmgr.registry import Registry
from searchmgr.managers.base import Manager, ManagerError, Observation, PathStep, Proposal, ProposalContext, Sibling

REGISTRY = Registry("manager", {
    "heuristic": "searchmgr.managers.heuristic:HeuristicManager",
    "random": "searchmgr.managers.random:RandomManager",
    "model": "searchmgr.managers.model:ModelManager",
    "openai": "searchmgr.managers.llm:LLMManager",
    "model_llm": "searchmgr.managers.model_llm:ModelLLMManager",
    "model_random": "searchmgr.managers.model_random:ModelRandomManager",
    "replay": "searchmgr.managers.replay:ReplayManager",
})


def manager_names() -> list[str]:
    return REGISTRY.names()


def manager_class(name: str) -> type[Manager]:
    return REGISTRY.get(name)


__all__ = ["Manager", "ManagerError", "Observation", "PathStep", "Proposal", "ProposalContext", "Sibling", "REGISTRY", "manager_names",
           "manager_class"]
