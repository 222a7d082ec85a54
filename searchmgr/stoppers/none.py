"""``none``: never stops a segment early."""

from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict


class NeverStopper(Stopper):
    name = "none"

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        return CONTINUE
