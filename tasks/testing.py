"""``check_task``: a conformance check for any task, to call in your own tests (like gymnasium's ``check_env``).

    from searchmgr.tasks.testing import check_task

    def test_my_task_keeps_the_contract():
        check_task(MyTask(MyTask.Options(preset="smoke")))

It trains a few short segments on the CPU, so give it a small preset.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch

from searchmgr.tasks import Task, load_task, reference_of
from searchmgr.tasks.base import Segment, SegmentResult
from searchmgr.tasks.contract import CheckedTask


class TaskCheckFailed(AssertionError):
    """A task that breaks the contract of docs/tasks.md; the message says what to fix."""


def _roundtrip(state: dict) -> dict:
    """Through ``torch.save``/``torch.load``, as the store does between segments."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def _same(a: dict[str, float], b: dict[str, float], rtol: float) -> list[str]:
    return [k for k in a if k in b and not (math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-12)
                                            or (math.isnan(a[k]) and math.isnan(b[k])))]


def check_task(task: Task, *, seed: int = 0, steps: int | None = None, rtol: float = 1e-6) -> dict[str, Any]:
    """Check ``task`` against the contract; raise :class:`TaskCheckFailed` (or a ``TaskError``) on a breach.

    Checks that its declarations hold (names, namespaced objective, the base recipe in
    bounds, search defaults), that every evaluation's metrics are namespaced numbers,
    that a segment run to its end reports the test metric at its last evaluation and
    trains exactly its steps, that two segments of ``steps`` resumed through a
    ``torch.save`` round trip end exactly (to ``rtol``) like one segment of ``2 * steps``,
    and that a segment stopped at its first evaluation returns what it has.
    ``steps`` defaults to the preset's ``eval_every``. Returns the metrics it saw.
    """
    checked = task if isinstance(task, CheckedTask) else load_task(reference_of(task), instance=task)
    n = steps or checked.search_defaults().eval_every
    recipe = checked.base_recipe()
    horizon = 2 * n
    root = _roundtrip(checked.init(seed))
    # one long segment ...
    evals: list[tuple[int, dict[str, float]]] = []
    long = checked.train_segment(_roundtrip(root), recipe, Segment(0, 2 * n, horizon, n),
                                 lambda step, m: evals.append((step, dict(m))) or False)
    _need(long.steps_done == 2 * n and not long.stopped, f"a segment of {2 * n} steps ended after {long.steps_done}")
    # ... equals two resumed ones
    first = checked.train_segment(_roundtrip(root), recipe, Segment(0, n, horizon, n), lambda s, m: False)
    second = checked.train_segment(_roundtrip(first.checkpoint), recipe, Segment(n, n, horizon, n), lambda s, m: False)
    differ = _same(long.metrics, second.metrics, rtol)
    _need(not differ, f"two segments of {n} steps resumed from a checkpoint do not end like one of {2 * n}: "
          + ", ".join(f"{k} {long.metrics[k]!r} vs {second.metrics[k]!r}" for k in differ)
          + "; put everything training depends on into the checkpoint (model, optimizer, scheduler, step, RNG "
          "states, data order), keep evaluation off the training RNG, and do not modify the checkpoint passed in")
    # a stopped segment returns what it has
    seen: list[dict[str, float]] = []

    def stop_first(step: int, metrics: dict[str, float]) -> bool:
        seen.append(dict(metrics))
        return True

    stopped: SegmentResult = checked.train_segment(_roundtrip(root), recipe, Segment(0, 2 * n, horizon, n),
                                                   stop_first)
    _need(stopped.stopped and len(seen) == 1, f"a segment whose on_eval returned True at step {n} went on "
          f"(stopped={stopped.stopped}, {len(seen)} evaluations); return SegmentResult(..., stopped=True) at once")
    _need(stopped.steps_done == n, f"a segment stopped at step {n} reported steps_done={stopped.steps_done}")
    _need(stopped.metrics == seen[0], "a stopped segment must return the metrics of its last evaluation")
    return {"long": long.metrics, "resumed": second.metrics, "evaluations": evals}


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise TaskCheckFailed(message)


__all__ = ["TaskCheckFailed", "check_task"]
