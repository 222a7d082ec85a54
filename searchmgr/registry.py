"""One lazy registry shape for managers, stoppers and executors: name -> ``module:attr``.

Implementations are imported only when used, so heavy optional dependencies (an LLM
client, Ray) load only for the runs that ask for them.
"""

from __future__ import annotations

import importlib
from typing import Generic, Mapping, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, targets: Mapping[str, str]):
        self.kind = kind
        self.targets = dict(targets)

    def names(self) -> list[str]:
        return list(self.targets)

    def __iter__(self):
        return iter(self.targets)

    def __contains__(self, name: object) -> bool:
        return name in self.targets

    def get(self, name: str) -> type[T]:
        if name not in self.targets:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        module, _, attr = self.targets[name].partition(":")
        return getattr(importlib.import_module(module), attr)
