"""A run directory: its files, opening it to read, owning it to write, and creating it atomically.

A run directory holds ``tree.db`` (:data:`DB_NAME`), ``config.json`` (:data:`CONFIG_NAME`),
``checkpoints/`` and ``owner.lock`` (:data:`LOCK_NAME`).

* **Readers** (``show``, ``export``, reports, the replay manager) call :func:`open_run`:
  a read-only store, no lock, nothing written -- they work while a search runs.
* **One owner writes**: :func:`claim_run` (resume, repair) takes the owner lock, an
  exclusive ``fcntl.flock`` on ``owner.lock``, and records the owner's pid, host and
  command in that file. A second process is refused at once with a message that names
  the holder. The kernel drops the lock when its process dies, however it dies, so a
  lock left by a dead process is simply taken over (the takeover is reported). The
  lock is advisory and local: runs on network file systems are not protected.
* **Creation is atomic** (:func:`create_run`): the run is built in a hidden sibling
  (``.NAME.partial-XXXX``, locked) and renamed to its name once its root checkpoint is
  written. A process killed or failing during creation leaves no half-made run; the
  next creation of the same name removes its leftover.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from searchmgr.config import ConfigError, SearchConfig, build_config
from searchmgr.errors import UserError
from searchmgr.sanitize import Redactor, shorten
from searchmgr.store import CorruptStore, StoreError, TreeStore, faults
from searchmgr.store.space import disk_full, is_full

DB_NAME = "tree.db"
CONFIG_NAME = "config.json"


def checkpoint_ref(node_id: int) -> str:
    """Where a node's checkpoint lives, relative to its run directory (the ``checkpoint`` column)."""
    return f"checkpoints/node_{node_id:05d}.pt"
LOCK_NAME = "owner.lock"
PARTIAL = ".partial-"  # infix of the hidden sibling a run is built in


class RunNotFound(UserError, FileNotFoundError):
    def __str__(self) -> str:
        return f"{self.args[0]} is not a run directory (no {DB_NAME}); give the out= of an earlier explore"


class RunDirError(ConfigError):
    """A directory cannot hold a new run (``out=`` names a file, a non-empty directory, a name too long ...)."""


class RunLocked(StoreError):
    """Another live process owns the run."""


@dataclass(frozen=True)
class Owner:
    """Who holds (or held) a run's lock, as recorded in its lock file."""

    pid: int | None
    host: str | None
    since: float | None
    command: str | None

    @classmethod
    def read(cls, fd: int) -> "Owner | None":
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
            return cls(data.get("pid"), data.get("host"), data.get("since"), data.get("command"))
        except (ValueError, AttributeError, OSError):
            return None

    def __str__(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since)) if self.since else "?"
        return f"pid {self.pid} on host {self.host} (since {since}: {self.command})"


class RunLock:
    """The owner lock of a run directory; :meth:`release` (or the process's death) frees it."""

    def __init__(self, fd: int, previous: Owner | None):
        self.fd: int | None = fd
        self.previous = previous  # a dead owner whose lock this one took over, if any

    @classmethod
    def acquire(cls, run_dir: Path) -> "RunLock":
        path = Path(run_dir) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock_patiently(fd)
        except BlockingIOError:
            holder = Owner.read(fd)
            os.close(fd)
            raise RunLocked(f"{run_dir} is in use by {holder or 'another process'}; wait for it to finish or "
                            "stop it, then retry (reading it with show/export/report works meanwhile)") from None
        previous = Owner.read(fd)  # left by a process that died without releasing
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
              "command": shorten(" ".join(sys.argv), 300)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        return cls(fd, previous)

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # an empty file: released cleanly, nothing to take over
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _flock_patiently(fd: int, tries: int = 20, pause_s: float = 0.05) -> None:
    """Take the lock; a reader's probe (:func:`owner_of`) holds it for microseconds, so a few short retries tell
    it from an owner, who holds it for good. Raises ``BlockingIOError`` when an owner holds it."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(pause_s)


def owner_of(run_dir: str | Path) -> Owner | None:
    """The live owner of a run (a process holds its lock), or None: readers check a run's stored state with it.
    The probe takes a shared lock for an instant and never writes the file."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Owner.read(fd) or Owner(None, None, None, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _store_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / DB_NAME).is_file():
        raise RunNotFound(run_dir)
    return run_dir / DB_NAME


def open_run(run_dir: str | Path) -> TreeStore:
    """The run's store, read-only and without the lock (for show, export, reports)."""
    return TreeStore.read_only(_store_path(Path(run_dir)))


def stored_config(row: dict) -> SearchConfig:
    """The validated config of a stored search row (``TreeStore.search()``); :class:`CorruptStore` if damaged."""
    config = row["config"]
    if isinstance(config, dict) and isinstance(config.get("uct"), dict) and "fixed" not in config["uct"]:
        config = {**config, "uct": {**config["uct"], "fixed": "first"}}  # stored before uct.fixed: fixed path first
    try:
        return build_config(config)
    except ConfigError as e:
        raise CorruptStore(f"the stored config of this run is damaged ({e}); restore tree.db from a copy or "
                           "start a new run") from None


def claim_run(run_dir: str | Path, redact: Redactor = Redactor()) -> "Run":
    """Own the run (its lock) and open its store for writing; raise :class:`RunLocked` if another process owns it."""
    path = _store_path(Path(run_dir))
    lock = RunLock.acquire(Path(run_dir))
    try:
        return Run(Path(run_dir), lock, TreeStore(path, redact=redact))
    except BaseException:
        lock.release()
        raise


def check_new(run_dir: Path) -> None:
    """Raise :class:`RunDirError` unless ``run_dir`` can become a new run (absent, or an empty directory)."""
    target = Path(os.path.abspath(run_dir))
    shown = shorten(str(run_dir))
    limit = 255 - len(PARTIAL) - 10  # room for the hidden sibling's name
    for part in target.parts:
        if len(part.encode()) > limit:
            raise RunDirError(f"out=: the name {shorten(part, 60)} is too long ({len(part.encode())} bytes; at most "
                              f"{limit}); choose a shorter name")
    if target == target.parent:
        raise RunDirError(f"out={shown} is the file-system root; give a new directory such as runs/toy3")
    if target.is_dir():
        if (target / DB_NAME).exists():
            raise RunDirError(f"out={shown} already holds a run; continue it with `searchmgr explore --resume "
                              f"{shown}` or choose another out=")
        if any(target.iterdir()):
            raise RunDirError(f"out={shown} exists and is not empty; give a new directory (searchmgr creates it)")
    elif target.exists():
        raise RunDirError(f"out={shown} is an existing file, not a directory; give a new directory name")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"out={shown} lies under {shorten(str(parent))}, which is a file; "
                                  "give a path under a directory")
            break


def _sweep(parent: Path, name: str) -> None:
    """Remove leftovers of killed creations of ``name`` (their lock is free: their process is gone)."""
    for partial in parent.glob(f".{name}{PARTIAL}*"):
        try:
            lock = RunLock.acquire(partial)
        except (RunLocked, OSError):
            continue  # a creation still in progress, or not ours to remove
        lock.release()
        shutil.rmtree(partial, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Run:
    """An owned, open run: its directory, lock and store."""

    path: Path
    lock: RunLock
    store: TreeStore

    def close(self) -> None:
        self.store.close()
        self.lock.release()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_run(run_dir: Path, build: Callable[[Path, TreeStore], None], redact: Redactor = Redactor()) -> Run:
    """Create a run at ``run_dir`` atomically: ``build(directory, store)`` fills a hidden, locked sibling
    directory, which is then renamed to ``run_dir``. Any error (or a kill) before the rename leaves no run."""
    run_dir = Path(run_dir)
    check_new(run_dir)
    parent = Path(os.path.abspath(run_dir)).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create the parent of out={shorten(str(run_dir))}: {e.strerror}") from None
    _sweep(parent, run_dir.name)
    stage = parent / f".{run_dir.name}{PARTIAL}{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    lock = RunLock.acquire(stage)
    try:
        with TreeStore(stage / DB_NAME, redact=redact) as store:
            build(stage, store)
        _fsync_dir(stage)
        faults.point()  # built but not yet published
        try:
            os.rename(stage, run_dir)  # replaces run_dir only if it is an empty directory
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise RunDirError(f"out={shorten(str(run_dir))} was created by someone else meanwhile; "
                                  "choose another out=") from None
            raise
        _fsync_dir(parent)
    except BaseException as e:
        lock.release()
        shutil.rmtree(stage, ignore_errors=True)
        if is_full(e):  # name the run asked for, not the hidden directory it was built in (removed now)
            raise disk_full(run_dir, f"creating the run {shorten(str(run_dir))}",
                            then="run the same command again: nothing was created") from e
        raise
    try:  # the lock is on the lock file's inode: it moved with the directory and is still ours
        return Run(run_dir, lock, TreeStore(run_dir / DB_NAME, redact=redact))
    except BaseException:
        lock.release()
        raise
