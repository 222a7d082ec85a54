"""Progress display for long searches: one line per finished node, a live status while training.

Text that may come from outside (diagnoses, rejection reasons, errors, task info) is
printed through :meth:`ConsoleReporter.safe`: secrets redacted, no terminal escapes,
no rich markup.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from searchmgr.sanitize import Redactor, cap, fmt, for_terminal, one_line

if TYPE_CHECKING:
    from searchmgr.outcome import Outcome
    from searchmgr.store import Node


class Reporter:
    """Silent base: the search calls these hooks; subclasses show them."""

    def start(self, metric: str, budget_steps: int, redact: Redactor = Redactor()) -> None: ...

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
        self.redact = Redactor()

    def start(self, metric: str, budget_steps: int, redact: Redactor = Redactor()) -> None:
        self.metric, self.budget, self.redact = metric, budget_steps, redact

    def safe(self, text: str, limit: int = 500) -> str:
        """Outside text as printed: redacted, one line, no escapes, no markup, at most ``limit`` characters."""
        return escape(cap(one_line(self.redact(text)), limit))

    def message(self, text: str) -> None:
        self.console.print(self.safe(text, 2000))

    def node_started(self, node: "Node", source: str, diagnosis: str | None) -> None:
        why = f" — {self.safe(diagnosis)}" if diagnosis else ""
        changed = ", ".join(f"{k}={v:.3g}" for k, v in node.recipe.items())
        self.console.print(f"[bold]node {node.id}[/] depth {node.depth} steps {node.start_step}-{node.end_step} "
                           f"({self.safe(source)}){why}\n    recipe: {self.safe(changed)}")
        if self.live:
            self._status = self.console.status(f"training node {node.id}")
            self._status.start()

    def evaluated(self, node: "Node", step: int, metrics: dict[str, float], budget_used: int) -> None:
        text = (f"training node {node.id} (depth {node.depth}) step {step}/{node.end_step}  "
                f"{self.metric}={fmt(metrics.get(self.metric))}  budget {budget_used}/{self.budget} steps")
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
        extra = f"  error: {self.safe(node.error)}" if node.error else ""
        self.console.print(
            f"    [{colour}]{node.status.value}[/] {self.metric}={fmt(node.val_score)} after {node.steps_trained} "
            f"steps | nodes {nodes_done} | budget {budget_used}/{self.budget} | best schedule {fmt(best)}{extra}")

    def rejected(self, parent_id: int, source: str, reason: str) -> None:
        self.console.print(f"    [yellow]proposal from {self.safe(source)} for node {parent_id} rejected[/]: "
                           f"{self.safe(reason)}")

    def finished(self, outcome: "Outcome") -> None:
        self._stop_status()
        self.console.print(escape(for_terminal(self.redact(outcome.render()))))
