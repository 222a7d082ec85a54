"""What a search session ended with (returned by :func:`searchmgr.search.explore`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from searchmgr.sanitize import fmt
from searchmgr.store import Node


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    metric: str
    stop_reason: str
    best: Node | None
    best_path: tuple[Node, ...]
    fixed: Node | None  # the fixed recipe's last segment
    steps_used: int
    budget_steps: int
    nodes_trained: int
    wall_s: float
    train_s: float  # seconds inside training, summed over workers
    workers: int = 1
    stopped: bool = False  # stopped before its end (a command or a signal); ``--resume`` continues it
    exit_status: int = 0  # the command line's: 128 + N when signal N stopped it (cleanly), else 0

    @property
    def overhead_share(self) -> float:
        """Share of the workers' wall time not spent training (1 - utilisation)."""
        capacity = self.wall_s * self.workers
        return 0.0 if capacity <= 0 else max(capacity - self.train_s, 0.0) / capacity

    def render(self) -> str:
        lines = [f"search stopped: {self.stop_reason}",
                 f"steps {self.steps_used}/{self.budget_steps}, nodes trained this session {self.nodes_trained}, "
                 f"wall {self.wall_s:.1f}s, outside training {100 * self.overhead_share:.1f}%"
                 + (f" of {self.workers} workers' time" if self.workers > 1 else "")]
        if self.best is not None:
            lines.append(f"best {self.metric}={self.best.val_score:.4g} (test {fmt(self.best.test_score)}) "
                         f"at node {self.best.id}")
            for n in self.best_path[1:]:
                lines.append(f"  steps {n.start_step:>6}-{n.end_step:<6} node {n.id:<4} "
                             + " ".join(f"{k}={v:.3g}" for k, v in n.recipe.items()))
        f = self.fixed
        if f is not None and f.val_score is not None:
            line = f"fixed recipe {self.metric}={f.val_score:.4g} (test {fmt(f.test_score)})"
            if self.best is not None and f.end_step < self.best.end_step:  # uct.fixed=start: grown as far as it led
                there = next((n for n in self.best_path if n.end_step >= f.start_step + f.steps_trained), None)
                line = (f"fixed recipe {self.metric}={f.val_score:.4g} after step {f.start_step + f.steps_trained} "
                        f"({f.status.value}; not grown further, other schedules led)"
                        + (f"; the best schedule had {there.val_score:.4g} by step {there.end_step}"
                           if there is not None and there.val_score is not None else ""))
            lines.append(line)
        lines.append(f"run: {self.run_dir}")
        if self.stopped:
            lines.append(f"continue with `searchmgr explore --resume {self.run_dir}`")
        return "\n".join(lines)
