"""Progress display for long searches: one line per finished node, a live status while training."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from searchmgr.outcome import Outcome
    from searchmgr.store import Node


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


class Reporter:
    """Silent base: the search calls these hooks; subclasses show them."""

    def start(self, metric: str, budget_steps: int) -> None: ...

    def message(self, text: str) -> None: ...

    def node_started(self, node: "Node", source: str, diagnosis: str | None) -> None: ...

    def evaluated(self, node: "Node", step: int, metrics: dict[str, float], budget_used: int) -> None: ...

    def node_finished(self, node: "Node", best: float | None, budget_used: int, nodes_done: int) -> None: ...

    def rejected(self, parent_id: int, source: str, reason: str) -> None: ...

    def finished(self, outcome: "Outcome") -> None: ...


class ConsoleReporter(Reporter):
    """Prints to the terminal (rich); on a terminal a status line shows the node now training."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.metric = "score"
        self.budget = 0
        self.live = self.console.is_terminal
        self._status = None
        self._last_print = 0.0

    def start(self, metric: str, budget_steps: int) -> None:
        self.metric, self.budget = metric, budget_steps

    def message(self, text: str) -> None:
        self.console.print(text)

    def node_started(self, node: "Node", source: str, diagnosis: str | None) -> None:
        why = f" — {diagnosis}" if diagnosis else ""
        changed = ", ".join(f"{k}={v:.3g}" for k, v in node.recipe.items())
        self.console.print(f"[bold]node {node.id}[/] depth {node.depth} steps {node.start_step}-{node.end_step} "
                           f"({source}){why}\n    recipe: {changed}")
        if self.live:
            self._status = self.console.status(f"training node {node.id}")
            self._status.start()

    def evaluated(self, node: "Node", step: int, metrics: dict[str, float], budget_used: int) -> None:
        text = (f"training node {node.id} (depth {node.depth}) step {step}/{node.end_step}  "
                f"{self.metric}={_fmt(metrics.get(self.metric))}  budget {budget_used}/{self.budget} steps")
        if self._status is not None:
            self._status.update(text)
        elif time.monotonic() - self._last_print > 30:  # not a terminal: a line every 30 s at most
            self._last_print = time.monotonic()
            print("    " + text, file=sys.stdout, flush=True)

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def node_finished(self, node: "Node", best: float | None, budget_used: int, nodes_done: int) -> None:
        self._stop_status()
        colour = {"done": "green", "pruned": "yellow", "failed": "red"}.get(node.status.value, "white")
        extra = f"  error: {node.error}" if node.error else ""
        self.console.print(
            f"    [{colour}]{node.status.value}[/] {self.metric}={_fmt(node.val_score)} after {node.steps_trained} "
            f"steps | nodes {nodes_done} | budget {budget_used}/{self.budget} | best {_fmt(best)}{extra}")

    def rejected(self, parent_id: int, source: str, reason: str) -> None:
        self.console.print(f"    [yellow]proposal from {source} for node {parent_id} rejected[/]: {reason}")

    def finished(self, outcome: "Outcome") -> None:
        self._stop_status()
        self.console.print(outcome.render())
