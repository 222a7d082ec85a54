"""Knob trajectories and metric curves along root-to-leaf paths.

A *path* is a list of nodes, root first, as returned by :meth:`RunData.best_path`
or :meth:`RunData.top_paths`. The root is the untrained model and is never
trained under its recipe, so trajectories use the trained segments only
(depth 1 .. leaf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from searchmgr.analysis.run import RunData
from searchmgr.store import Node


def segments(path: Sequence[Node]) -> list[Node]:
    """The trained segments of a path (the root dropped)."""
    return [n for n in path if n.depth > 0]


def knob_values(path: Sequence[Node], knob: str) -> list[float]:
    """The knob's value in each trained segment of ``path``, in order."""
    return [float(n.recipe[knob]) for n in segments(path)]


def step_function(path: Sequence[Node], knob: str) -> tuple[list[int], list[float]]:
    """``(xs, ys)`` for ``plt.step(xs, ys, where="post")``: segment starts plus the last end, values repeated last."""
    segs = segments(path)
    if not segs:
        return [], []
    xs = [n.start_step for n in segs] + [segs[-1].end_step]
    ys = [float(n.recipe[knob]) for n in segs]
    return xs, ys + ys[-1:]


@dataclass(frozen=True)
class Curve:
    """A metric along a path on the global step axis."""

    key: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


def curve(run: RunData, path: Sequence[Node], key: str) -> Curve:
    """Concatenate ``key`` over the segments of ``path`` (pruned segments contribute what they recorded)."""
    steps: list[int] = []
    values: list[float] = []
    for n in segments(path):
        for step, m in run.metrics.get(n.id, []):
            if key in m:
                steps.append(step)
                values.append(m[key])
    return Curve(key, tuple(steps), tuple(values))


def train_key(run: RunData) -> str | None:
    """The training counterpart of the objective's metric (``val/loss`` -> ``train/loss``), if recorded."""
    keys = {k for ms in run.metrics.values() for _, m in ms for k in m}
    metric = run.objective.metric
    guess = "train/" + metric.split("/", 1)[-1]
    if guess in keys:
        return guess
    return "train/loss" if "train/loss" in keys else None


# what an RL or GRPO run is read by, most telling first: outcome, then the policy's own state
TELEMETRY_WORDS = ("return", "success", "reward", "accuracy", "episode_length", "entropy", "kl", "clip",
                   "explained_variance", "completion_length", "frac_zero_std", "action_std", "grad_norm")


def telemetry_keys(run: RunData, limit: int = 8) -> list[str]:
    """The recorded metrics that describe an RL or GRPO run (returns, success, rewards, KL, entropy ...),
    in the order of :data:`TELEMETRY_WORDS`; test metrics and the objective itself are left out."""
    keys = sorted({k for ms in run.metrics.values() for _, m in ms for k in m
                   if not k.startswith("test/") and k != run.objective.metric})
    out: list[str] = []
    for word in TELEMETRY_WORDS:
        out += [k for k in keys if word in k.rsplit("/", 1)[-1] and k not in out]
    return out[:limit]
