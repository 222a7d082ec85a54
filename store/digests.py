"""The sha256 of checkpoint files, remembered while a file is unchanged.

Checking a run's checkpoints (``show``, ``export``, the service's schedule) would read every
file in full on each call: gigabytes for large models. A digest is remembered under the
file's identity -- resolved path, device, inode, size and modification time in nanoseconds
-- in this process and in ``$SEARCHMGR_CACHE/digests.db`` (default ``~/.cache/searchmgr``),
so a file is read again only once it changed. A rewritten or flipped byte changes the
modification time, so damage is still found. The cache is only an optimisation: when its
directory cannot be written, files are hashed every time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

_MEMORY: dict[str, str] = {}
_DISABLED: list[str] = []  # why the on-disk cache is off in this process (it could not be opened)


def cache_path() -> Path:
    return Path(os.environ.get("SEARCHMGR_CACHE") or Path.home() / ".cache" / "searchmgr") / "digests.db"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"


def _on_disk() -> sqlite3.Connection | None:
    if _DISABLED:
        return None
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(cache_path(), timeout=5)
        conn.execute("CREATE TABLE IF NOT EXISTS digests (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
        return conn
    except (OSError, sqlite3.Error) as e:  # a read-only home: hash every time (documented above)
        _DISABLED.append(str(e))
        return None


def file_sha256(path: Path) -> str:
    """The file's sha256, read in full only when this file (as it is now) was never hashed before.
    Raises ``OSError`` (``FileNotFoundError`` ...) as reading it would."""
    key = _key(Path(path))
    if key in _MEMORY:
        return _MEMORY[key]
    conn = _on_disk()
    try:
        row = conn.execute("SELECT sha256 FROM digests WHERE key = ?", [key]).fetchone() if conn else None
        if row is None:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            if conn is not None:
                try:
                    with conn:
                        conn.execute("INSERT OR REPLACE INTO digests VALUES (?, ?)", [key, digest])
                except sqlite3.Error as e:  # a full or locked cache: this file is hashed again next time
                    _DISABLED.append(str(e))
        else:
            digest = row[0]
    finally:
        if conn is not None:
            conn.close()
    _MEMORY[key] = digest
    return digest
