"""``rule``: prune a segment whose validation trend cannot realistically beat the best.

After ``ctx.min_step`` and from the segment's second evaluation on (one point has no
trend), fit the slope of the last ``window`` validation points, project it
(optimistically, improvements only, times ``optimism``) to the end of the segment,
and stop when even that projection, plus a noise allowance of ``margin`` times the
best's magnitude, stays worse than the best validation score
of finished segments at the same depth. With ``stopper.reference=horizon`` the
projection runs to the end of the schedule instead and is compared with the best
complete schedule: a slow starter that is still improving is kept, a stalled one is not.
With ``stopper.reference=rank`` a segment is judged among its *peers*, the finished segments at its
depth, at the same number of evaluations into the segment: it is stopped only when it is in the bottom
``1 - quantile`` of them there *and* its own projected curve cannot reach the ``quantile`` of their
scores at the segment's end (the median by default). A slow starter whose curve still climbs past the
middle of the pack survives; nothing is judged against the single best.
With ``stopper.noise=true`` the allowance is at least sqrt(2) times the evaluation noise of the
objective pooled over the tree (``ctx.noise``), so a noisy metric does not prune on noise.
"""

from __future__ import annotations

import math

from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.telemetry import slope

MIN_PEERS = 3  # fewer comparable segments than this: no rank to judge by


class RuleStopper(Stopper):
    name = "rule"

    def __init__(self, window: int = 3, optimism: float = 1.5, margin: float = 0.01, rank: bool = False,
                 quantile: float = 0.5):
        self.window = window
        self.optimism = optimism
        self.margin = margin
        self.rank, self.quantile = rank, quantile

    @classmethod
    def from_config(cls, config) -> "RuleStopper":
        s = config.stopper
        return cls(window=s.window, margin=s.margin, rank=s.reference == "rank", quantile=s.quantile)

    def projected(self, ctx: StopContext) -> float:
        """The segment's utility at ``ctx.judged_at`` if its best recent trend (improvements only) went on."""
        u = ctx.objective.utility
        points = [(s, u(v)) for s, v in ctx.trajectory[-self.window:]]
        return points[-1][1] + self.optimism * max(slope(points), 0.0) * (ctx.judged_at - ctx.step)

    def allowance(self, ctx: StopContext, reference: float) -> float:
        allowance = self.margin * abs(reference)
        if ctx.noise is not None:  # the segment's value and the reference are both one noisy evaluation
            allowance = max(allowance, math.sqrt(2) * ctx.noise)
        return allowance

    def by_rank(self, ctx: StopContext) -> StopVerdict:
        """Stop a segment in the bottom of its peers at this point whose curve cannot reach their middle."""
        u = ctx.objective.utility
        i = len(ctx.trajectory) - 1
        here = [u(p.values[i]) for p in ctx.peers if len(p.values) > i and math.isfinite(u(p.values[i]))]
        ends = sorted(u(p.final) for p in ctx.peers if p.final is not None and math.isfinite(u(p.final)))
        if len(here) < MIN_PEERS or not ends:
            return CONTINUE
        current = u(ctx.trajectory[-1][1])
        behind = sum(h > current for h in here) / len(here)
        if behind <= self.quantile:
            return CONTINUE  # in the upper part of its peers at this point
        target = ends[min(int(self.quantile * len(ends)), len(ends) - 1)]
        projected, allowance = self.projected(ctx), self.allowance(ctx, target)
        if projected + allowance < target:
            return StopVerdict(True, (
                f"at step {ctx.step} {ctx.objective.metric}={ctx.trajectory[-1][1]:.4g} is behind {behind:.0%} of "
                f"{len(here)} segments at this depth after as many evaluations, and even its best recent trend "
                f"projects to {self._as_metric(ctx, projected):.4g} by step {ctx.judged_at}, short of their "
                f"{self.quantile:.0%} point there ({self._as_metric(ctx, target):.4g}) by more than the allowance "
                f"{allowance:.3g}"))
        return CONTINUE

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        if self.rank and ctx.step >= ctx.min_step and len(ctx.trajectory) >= 2:
            return self.by_rank(ctx)
        if self.rank or ctx.step < ctx.min_step or ctx.best_at_depth is None or len(ctx.trajectory) < 2:
            return CONTINUE  # one evaluation has no trend to project: never judge a segment on it
        best = ctx.objective.utility(ctx.best_at_depth)
        projected, allowance = self.projected(ctx), self.allowance(ctx, best)
        if projected + allowance < best:
            return StopVerdict(True, (
                f"at step {ctx.step} {ctx.objective.metric}={ctx.trajectory[-1][1]:.4g}; even its best recent trend "
                f"projects to {self._as_metric(ctx, projected):.4g} by step {ctx.judged_at}, short of the best there "
                f"({ctx.best_at_depth:.4g}) by more than the allowance {allowance:.3g}"))
        return CONTINUE

    @staticmethod
    def _as_metric(ctx: StopContext, utility: float) -> float:
        return utility if ctx.objective.direction.value == "maximize" else -utility
