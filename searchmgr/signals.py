"""SIGTERM and SIGINT while a run trains: stop cleanly at the next safe point.

What slurm, Kubernetes and systemd send before killing (SIGTERM), and Ctrl-C (SIGINT):
the first one asks the run's owner to stop -- segments in training stop at their next
evaluation and become interrupted, nothing new starts, the store's state says
``stopped`` and the process exits with ``128 + signal number`` -- so ``--resume``
continues. A second signal interrupts at once (``KeyboardInterrupt``); the store's
transactions keep it consistent, and ``--resume`` continues from there too.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install the handlers for the duration of a ``with`` block (in the main thread only; elsewhere, signals
    keep their default action). :attr:`received` is the first signal's name."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def received(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by this signal."""
        return 128 + (self.signum or 0)

    def reason(self) -> str | None:
        """Why the run must stop (a signal arrived), or None."""
        return None if self.signum is None else f"stopped by {self.received}"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now, without waiting for a safe point
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
