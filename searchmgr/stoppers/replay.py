"""``replay``: repeat the stop decisions an earlier run applied (see :mod:`searchmgr.managers.replay`).

A segment is stopped at exactly the node and evaluation step where the original run
stopped it; everywhere else the stopper continues. Reads ``manager.replay``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from searchmgr.managers.replay import load_trace
from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.store import DecisionKind


class ReplayStopper(Stopper):
    name = "replay"

    def __init__(self, stops: Mapping[tuple[int, int], tuple[int | None, str]], origin: str = "memory"):
        self.stops = dict(stops)  # (node id, step) -> (decision id, reason)
        self.origin = origin

    @classmethod
    def from_run(cls, run_dir: Path) -> "ReplayStopper":
        _, decisions = load_trace(Path(run_dir))
        stops = {}
        for d in decisions:
            if d.kind is DecisionKind.STOPPER and d.applied:
                ctx = d.context or {}
                stops[(d.node_id, ctx.get("answered_at_step", ctx.get("step")))] = (d.id, d.reason or "")
        return cls(stops, str(run_dir))

    @classmethod
    def from_config(cls, config) -> "ReplayStopper":
        if config.manager.replay is None:
            raise ValueError("stopper.name=replay needs manager.replay=<run directory of the search to replay>")
        return cls.from_run(config.manager.replay)

    def should_stop(self, ctx: StopContext) -> StopVerdict:
        hit = self.stops.get((ctx.node_id, ctx.step))
        if hit is None:
            return CONTINUE
        did, reason = hit
        return StopVerdict(True, f"replayed stop (decision {did}): {reason}", record=True)
