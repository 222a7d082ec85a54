"""Checkpoint files: written to a temp file, fsynced, renamed; verified by sha256 on load."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from searchmgr.errors import UserError
from searchmgr.store.space import disk_full, is_full


class CheckpointCorrupt(UserError, RuntimeError):
    """A checkpoint file is missing or its bytes do not match the recorded sha256."""


def to_bytes(state: dict) -> bytes:
    """``state`` as ``torch.save`` writes it (the bytes of a checkpoint file)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def roundtrip(state: dict, *, map_location: str | None = "cpu") -> dict:
    """What a checkpoint file gives back: ``state`` through ``torch.save`` and ``torch.load`` as the search does
    between segments (no tensor shared with ``state``; loaded on the CPU unless ``map_location`` says otherwise)."""
    return torch.load(io.BytesIO(to_bytes(state)), weights_only=False, map_location=map_location)


def save_checkpoint(state: dict, path: Path) -> str:
    """Write ``state`` atomically to ``path`` and return the sha256 of the bytes."""
    data = to_bytes(state)
    digest = hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)  # no half-written file left behind
        if is_full(e):
            raise disk_full(path.parent.parent, f"writing {path.parent.name}/{path.name}") from e
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return digest


def load_checkpoint(path: Path, sha256: str) -> dict:
    """Read ``path``, check its sha256 and return the state dict."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointCorrupt(f"checkpoint {path} is missing") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise CheckpointCorrupt(
            f"checkpoint {path} is corrupt: sha256 {digest[:12]}… does not match the recorded {sha256[:12]}…; "
            "delete the node's subtree or start a new run"
        )
    return torch.load(io.BytesIO(data), weights_only=False, map_location="cpu")  # the task moves it (docs/tasks.md)
