"""Exact resume for reinforcement learning: environments, running statistics and RNGs in a checkpoint.

A PPO segment resumes exactly only if everything the rollout depends on comes back:
the environments mid-episode (physics state, time-limit counters, their RNGs and their
action spaces' RNGs), the wrappers' running statistics (gymnasium's
``NormalizeObservation`` / ``NormalizeReward``, ``RecordEpisodeStatistics``), the
pending observation the next action is chosen from, and the python, numpy and torch
RNGs that sample actions and shuffle minibatches. gymnasium's wrappers hold lambdas
(``TransformObservation(env, lambda o: np.clip(o, -10, 10))``), which ``pickle`` refuses;
cloudpickle (a dependency of gymnasium) stores them, so the whole wrapped environment
travels as bytes inside the task's plain-dict checkpoint::

    from searchmgr import rl

    ckpt = {"agent": agent.state_dict(), "optim": opt.state_dict(),
            "rl": rl.snapshot(envs, next_obs, done=next_done, device=device)}  # at the end of a segment
    ...
    agent.load_state_dict(checkpoint["agent"])                       # build the model first (it draws
    envs, next_obs, next_done = rl.restore(checkpoint["rl"])         # from the RNG), then restore

Supported: single environments and ``SyncVectorEnv`` with any wrappers, vector
wrappers included. Refused with :class:`EnvSnapshotError`: ``AsyncVectorEnv`` (its
environments live in other processes) and environments that pickle only their
constructor arguments (``gymnasium.utils.EzPickle``: MuJoCo, Box2D), whose state would
silently be lost. Functions and classes defined in a plug-in task file are stored by
value, so a checkpoint still loads after the file changed or in another worker process.
"""

from __future__ import annotations

import copy
import random
import sys
from typing import Any, NamedTuple

import cloudpickle
import gymnasium
import numpy as np
import torch

from searchmgr.errors import UserError
from searchmgr.tasks import PLUGIN_MODULE_PREFIX

FORMAT = 1  # the layout of snapshot(); restore() refuses others


class EnvSnapshotError(UserError, ValueError):
    """An environment that cannot be captured exactly; the message says what to do instead."""


def _layers(env: Any) -> list[Any]:
    """``env``, the wrappers under it down to the base environment, and a SyncVectorEnv's sub-environments'."""
    out, seen = [], set()
    todo = [env]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        inner = getattr(e, "env", None)
        if inner is not None:
            todo.append(inner)
        todo.extend(getattr(e, "envs", None) or [])  # SyncVectorEnv
    return out


def _check_capturable(env: Any) -> None:
    for layer in _layers(env):
        if isinstance(layer, gymnasium.vector.AsyncVectorEnv):
            raise EnvSnapshotError(
                "an AsyncVectorEnv runs its environments in other processes, so their state cannot be stored; "
                "use gymnasium.vector.SyncVectorEnv (or gym.make_vec(..., vectorization_mode='sync'))")
        if isinstance(layer, gymnasium.utils.EzPickle):
            raise EnvSnapshotError(
                f"{type(layer).__name__} pickles only its constructor arguments (gymnasium.utils.EzPickle), so its "
                "state (positions, step counters) would be lost; give it a __getstate__/__setstate__ that keeps "
                "its state, or store its state yourself (as searchmgr/tasks/arm.py does with get_state/set_state)")


def _pickle_plugins_by_value() -> None:
    """Plug-in files are imported under a name carrying their sha256: store what they define by value."""
    for name, module in list(sys.modules.items()):
        if name.startswith(PLUGIN_MODULE_PREFIX) and module is not None:
            cloudpickle.register_pickle_by_value(module)


def snapshot_env(env: Any) -> bytes:
    """The environment with all its wrappers, counters, statistics and RNGs, as bytes (cloudpickle)."""
    _check_capturable(env)
    _pickle_plugins_by_value()
    return cloudpickle.dumps(env)


def restore_env(data: bytes) -> Any:
    """The environment :func:`snapshot_env` captured, in the state it had (a new object each call)."""
    return cloudpickle.loads(data)


def rng_state(cuda: bool = False) -> dict[str, Any]:
    """The global RNGs: python's ``random``, numpy's legacy global, torch's CPU one and, with ``cuda`` or once
    CUDA is in use, every CUDA device's (CPU tensors, so the checkpoint loads anywhere)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if cuda or (torch.cuda.is_available() and torch.cuda.is_initialized()):
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured. A CUDA state without CUDA here is an error (training on the
    CPU would draw from other streams than the run it resumes)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        if not torch.cuda.is_available():
            raise EnvSnapshotError("the checkpoint holds CUDA RNG states but CUDA is not available here; resume "
                                   "on a machine with a GPU, or start the run again with device=cpu")
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


class Resumed(NamedTuple):
    envs: Any
    obs: Any
    done: Any


def snapshot(envs: Any, obs: Any, *, done: Any = None, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Everything a rollout resumes from, as a plain dict for a checkpoint: the environments (see
    :func:`snapshot_env`), the pending observation ``obs`` the next action is chosen from, ``done`` (the
    pending episode-end flags, if your loop keeps them) and the global RNGs — the CUDA ones too when the task
    trains on a CUDA ``device`` (pass it already in ``init``: the root must carry them). Tensors are stored on
    the CPU."""
    cuda = torch.device(device).type == "cuda"
    return {"format": FORMAT, "envs": snapshot_env(envs), "obs": _to_cpu(obs), "done": _to_cpu(done),
            "rng": rng_state(cuda), "gymnasium": gymnasium.__version__}


def restore(state: dict[str, Any]) -> Resumed:
    """The environments, pending observation and flags of :func:`snapshot`; also restores the global RNGs,
    so call it after building the model (initialising layers draws from torch's RNG)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise EnvSnapshotError(f"not a searchmgr.rl snapshot of format {FORMAT}: "
                               f"{type(state).__name__} {sorted(state) if isinstance(state, dict) else ''}")
    envs = restore_env(state["envs"])
    set_rng_state(state["rng"])
    return Resumed(envs, copy.deepcopy(state["obs"]), copy.deepcopy(state["done"]))


def find_wrapper(env: Any, cls: type) -> Any | None:
    """The outermost wrapper of type ``cls`` around ``env`` (e.g. ``NormalizeObservation``, to copy its
    ``obs_rms`` into an evaluation environment), or None."""
    layer = env
    while layer is not None:
        if isinstance(layer, cls):
            return layer
        layer = getattr(layer, "env", None)
    return None


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return copy.deepcopy(value)


__all__ = ["EnvSnapshotError", "Resumed", "find_wrapper", "restore", "restore_env", "rng_state", "set_rng_state",
           "snapshot", "snapshot_env"]
