"""Early stoppers behind one interface, looked up by name."""

from __future__ import annotations

from searchmgr.registry import Registry
from searchmgr.stoppers.base import CONTINUE, Peer, StopContext, Stopper, StopVerdict

REGISTRY = Registry("stopper", {
    "rule": "searchmgr.stoppers.rule:RuleStopper",
    "none": "searchmgr.stoppers.none:NeverStopper",
    "llm": "searchmgr.stoppers.llm:LLMStopper",
    "replay": "searchmgr.stoppers.replay:ReplayStopper",
})


def stopper_names() -> list[str]:
    return REGISTRY.names()


def stopper_class(name: str) -> type[Stopper]:
    return REGISTRY.get(name)


__all__ = ["Peer", "CONTINUE", "StopContext", "Stopper", "StopVerdict", "REGISTRY", "stopper_names", "stopper_class"]
