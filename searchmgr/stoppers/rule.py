"""``rule``: prune a segment whose validation trend cannot realistically beat the best.

After ``ctx.min_step`` and from the segment's second evaluation on (one point has no
trend), fit the slope of the last ``window`` validation points, project it
(optimistically, improvements only, times ``optimism``) to the end of the segment,
and stop when even that projection, plus a noise allowance of ``margin`` times the
best's magnitude, stays worse than the best validation score
of finished segments at the same depth. With ``stopper.reference=horizon`` the
projection runs to the end of the schedule instead and is compared with the best
complete schedule: a slow starter that is still improving is kept, a stalled one is not.
With ``stopper.noise=true`` the allowance is at least sqrt(2) times the evaluation noise of the
objective pooled over the tree (``ctx.noise``), so a noisy metric does not prune on noise.
"""

from __future__ import annotations

import math

from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.telemetry import slope


class RuleStopper(Stopper):
    name = "rule"

    def __init__(self, window: int = 3, optimism: float = 1.5, margin: float = 0.01):
        self.window = window
        self.optimism = optimism
        self.margin = margin

    @classmethod
    def from_config(cls, config) -> "RuleStopper":
        return cls(window=config.stopper.window, margin=config.stopper.margin)

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        if ctx.step < ctx.min_step or ctx.best_at_depth is None or len(ctx.trajectory) < 2:
            return CONTINUE  # one evaluation has no trend to project: never judge a segment on it
        u = ctx.objective.utility
        points = [(s, u(v)) for s, v in ctx.trajectory[-self.window:]]
        current = points[-1][1]
        best = u(ctx.best_at_depth)
        rate = max(slope(points), 0.0)
        projected = current + self.optimism * rate * (ctx.judged_at - ctx.step)
        allowance = self.margin * abs(best)
        if ctx.noise is not None:  # the segment's value and the reference are both one noisy evaluation
            allowance = max(allowance, math.sqrt(2) * ctx.noise)
        if projected + allowance < best:
            return StopVerdict(True, (
                f"at step {ctx.step} {ctx.objective.metric}={ctx.trajectory[-1][1]:.4g}; even its best recent trend "
                f"projects to {self._as_metric(ctx, projected):.4g} by step {ctx.judged_at}, short of the best there "
                f"({ctx.best_at_depth:.4g}) by more than the allowance {allowance:.3g}"))
        return CONTINUE

    @staticmethod
    def _as_metric(ctx: StopContext, utility: float) -> float:
        return utility if ctx.objective.direction.value == "maximize" else -utility
