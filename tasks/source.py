"""Where a task came from (its provenance, recorded in the run), and the error family of task references.

Both are shared by the task resolution (:mod:`searchmgr.tasks`) and the run-time contract
check (:mod:`searchmgr.tasks.contract`), which imports them from here.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from searchmgr.errors import UserError


class TaskError(UserError, ValueError):
    """A task reference that cannot be turned into a valid task; the message names the fix."""


class SourceKind(str, enum.Enum):
    """Where a task came from."""

    ENTRY_POINT = "entry_point"
    MODULE = "module"
    FILE = "file"
    INSTANCE = "instance"  # handed to explore(task=...) in Python


@dataclass(frozen=True)
class TaskSource:
    """Provenance of a task: the reference the run stores (resume re-imports it) and what it pointed at."""

    reference: str
    kind: SourceKind
    module: str
    path: str | None = None
    sha256: str | None = None  # of the file, for path references

    def to_info(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in asdict(self).items() if v is not None}
