"""A full disk, reported as a full disk: what to free, and that the run resumes afterwards.

SQLite says "database or disk is full" (``SQLITE_FULL``) and the OS ``ENOSPC`` (or
``EDQUOT`` for a quota). Neither means the run is damaged: every store write is one
transaction that failed whole, and a checkpoint is renamed into place only once fully
written. :class:`DiskFull` says so, with the space left and what to free.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from searchmgr.errors import UserError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UserError, OSError):
    """The file system holding a run is full; nothing of the run is damaged. The message says what to free."""


def is_full(e: BaseException) -> bool:
    """Whether ``e`` is a full disk (or quota), from the OS or from SQLite."""
    if isinstance(e, DiskFull):
        return True
    if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
        return True
    return isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e)


def _free(where: Path) -> str:
    for p in (where, *where.parents):
        if p.exists():
            return f"{shutil.disk_usage(p).free / 2**20:.0f} MiB free"
    return "free space unknown"


def disk_full(run_dir: Path, doing: str, *, then: str | None = None) -> DiskFull:
    """The error for a full disk met while ``doing`` something for the run at ``run_dir``; ``then`` says how to
    go on once space is freed (default: resume the run)."""
    then = then or (f"continue it with `searchmgr explore --resume {run_dir}` (`supervise --resume` for a "
                    "supervised run): the run is intact")
    return DiskFull(f"no space left on the disk holding {run_dir} ({_free(Path(run_dir))}) while "
                    f"{doing}: free space there (other runs, or checkpoints no policy can branch from: "
                    f"checkpoints.keep=expandable deletes those), then {then}")
