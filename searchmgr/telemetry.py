"""Deterministic summaries of a node's telemetry: what managers and stoppers read.

Compact by design (last values, recent slopes, gaps, flags), never raw dumps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from searchmgr.objective import Objective

History = Sequence[tuple[int, dict[str, float]]]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two)."""
    pts = [(x, y) for x, y in points if math.isfinite(y)]
    if len(pts) < 2:
        return 0.0
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def noise(trajectories: Sequence[Sequence[float]], *, least: int = 3) -> float | None:
    """The evaluation noise of a metric (its standard deviation), pooled over segments' trajectories.

    Second differences ``y[i+1] - 2 y[i] + y[i-1]`` of evenly spaced evaluations cancel a linear trend; for
    independent noise of deviation s they have deviation s * sqrt(6). The median absolute one (x 1.4826, the
    normal consistency factor) is robust to the curvature of a few sharp turns. None with fewer than ``least``
    second differences."""
    d = [abs(y[i + 1] - 2 * y[i] + y[i - 1]) for y in trajectories for i in range(1, len(y) - 1)
         if all(math.isfinite(v) for v in y[i - 1:i + 2])]
    if len(d) < least:
        return None
    d.sort()
    mid = len(d) // 2
    median = d[mid] if len(d) % 2 else (d[mid - 1] + d[mid]) / 2
    return 1.4826 * median / math.sqrt(6)


def series(history: History, key: str) -> list[tuple[int, float]]:
    return [(step, m[key]) for step, m in history if key in m]


@dataclass(frozen=True)
class Summary:
    """A node's telemetry in a few numbers. Slopes are per 100 steps over the last ``window`` evaluations."""

    evals: int
    last: dict[str, float]
    slopes: dict[str, float]
    gap: float | None  # generalisation gap of the objective (positive = validation worse than training)
    gap_slope: float | None
    best: float | None  # best objective value on the path so far
    steps_since_best: int | None
    plateau: bool
    diverged: bool
    overfitting: bool  # validation worsening while training improves

    def to_dict(self) -> dict:
        d = asdict(self)
        d["last"] = {k: _round(v) for k, v in self.last.items()}
        d["slopes"] = {k: _round(v) for k, v in self.slopes.items()}
        for k in ("gap", "gap_slope", "best"):
            d[k] = _round(d[k])
        return d


def _round(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return v
    return float(f"{v:.4g}")


def summarize(history: History, objective: Objective, *, window: int = 4, plateau_tol: float = 0.01) -> Summary:
    """Summarise ``history`` (``[(step, metrics)]`` in step order) for ``objective``."""
    if not history:
        return Summary(0, {}, {}, None, None, None, None, False, False, False)
    last: dict[str, float] = {}
    for _, m in history:
        last.update(m)
    recent = list(history)[-window:]
    keys = sorted({k for _, m in recent for k in m if not k.startswith("test/")})
    slopes = {k: 100.0 * slope(series(recent, k)) for k in keys}
    sign = 1.0 if objective.direction.value == "minimize" else -1.0  # +1: lower is better
    val_key = objective.metric
    train_key = "train/" + val_key.split("/", 1)[-1]
    # generalisation gap: how much worse validation is than training, oriented
    gap = gap_slope = None
    if val_key in last and train_key in last:
        gaps = [(s, sign * (m[val_key] - m[train_key])) for s, m in recent if val_key in m and train_key in m]
        gap = gaps[-1][1] if gaps else None
        gap_slope = 100.0 * slope(gaps)
    # best so far on the path
    vals = series(history, val_key)
    finite = [(s, v) for s, v in vals if math.isfinite(v)]
    best = steps_since_best = None
    if finite:
        best_step, best = min(finite, key=lambda sv: sign * sv[1])
        steps_since_best = history[-1][0] - best_step
    diverged = any(not math.isfinite(v) for _, v in vals[-window:]) or any(
        not math.isfinite(v) for k, v in last.items() if k.startswith("train/") and "loss" in k)
    if best is not None and vals and math.isfinite(vals[-1][1]) and best != 0:
        # validation far worse than its best and still getting worse fast: call it divergence
        worse = sign * (vals[-1][1] - best) / abs(best)
        diverged = diverged or (worse > 0.5 and sign * slopes.get(val_key, 0.0) > 0)
    val_slope = slopes.get(val_key, 0.0)
    train_slope = slopes.get(train_key, 0.0)
    scale = abs(last.get(val_key, 1.0)) or 1.0
    plateau = len(recent) >= 3 and abs(val_slope) / scale < plateau_tol
    overfitting = len(recent) >= 2 and sign * val_slope > 0 and sign * train_slope < 0
    return Summary(len(history), last, slopes, gap, gap_slope, best, steps_since_best, plateau, diverged, overfitting)
