"""Early stoppers behind one interface, looked up by name."""

from __future__ import annotations

import importlib

from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict

REGISTRY: dict[str, str] = {
    "rule": "searchmgr.stoppers.rule:RuleStopper",
    "none": "searchmgr.stoppers.none:NeverStopper",
    "llm": "searchmgr.stoppers.llm:LLMStopper",
    "replay": "searchmgr.stoppers.replay:ReplayStopper",
}


def stopper_names() -> list[str]:
    return list(REGISTRY)


def stopper_class(name: str) -> type[Stopper]:
    if name not in REGISTRY:
        raise KeyError(f"unknown stopper {name!r}; choose one of {stopper_names()}")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["CONTINUE", "StopContext", "Stopper", "StopVerdict", "REGISTRY", "stopper_names", "stopper_class"]
