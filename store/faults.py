"""Fault injection for the kill test (tests only; inert unless the variable is set).

With ``SEARCHMGR_TEST_KILL_AT=N`` in the environment, the process ends at once with
``os._exit(KILLED)`` -- as abruptly as a SIGKILL: no cleanup, no flush -- when it
reaches its N-th *kill point*. Kill points are the start of every store transaction
and a few named places between writes (the rename that publishes a new run).
"""

from __future__ import annotations

import os

KILL_ENV = "SEARCHMGR_TEST_KILL_AT"
KILLED = 137  # the exit status a SIGKILL gives (128 + 9)


class _Countdown:
    """Counts kill points since the variable was last given a new value."""

    def __init__(self) -> None:
        self.armed: str | None = None
        self.seen = 0

    def point(self) -> None:
        value = os.environ.get(KILL_ENV)
        if not value:
            return
        if value != self.armed:
            self.armed, self.seen = value, 0
        self.seen += 1
        if self.seen >= int(value):
            os._exit(KILLED)


_COUNTDOWN = _Countdown()
point = _COUNTDOWN.point
