"""``check_task``: a conformance check for any task, to call in your own tests (like gymnasium's ``check_env``).

    from searchmgr.tasks.testing import check_task

    def test_my_task_keeps_the_contract():
        check_task(MyTask(MyTask.Options(preset="smoke")))

It trains a few short segments on the CPU, so give it a small preset. It also trains one
short segment with each knob at its low and at its high bound and fails for a knob whose
change leaves training bit-identical (:func:`check_knobs`; ``searchmgr check TASK``).
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from searchmgr.store import roundtrip
from searchmgr.surface import Knob, RecipeError, Role
from searchmgr.tasks import Task, load_task, reference_of
from searchmgr.tasks.base import Segment, SegmentResult
from searchmgr.tasks.contract import CheckedTask


class TaskCheckFailed(AssertionError):
    """A task that breaks the contract of docs/tasks.md; the message says what to fix."""


def _same(a: dict[str, float], b: dict[str, float], rtol: float) -> list[str]:
    return [k for k in a if k in b and not (math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-12)
                                            or (math.isnan(a[k]) and math.isnan(b[k])))]


def _checked(task: Task) -> Task:
    return task if isinstance(task, CheckedTask) else load_task(reference_of(task), instance=task)


def check_task(task: Task, *, seed: int = 0, steps: int | None = None, rtol: float = 1e-6,
               knobs: bool = True) -> dict[str, Any]:
    """Check ``task`` against the contract; raise :class:`TaskCheckFailed` (or a ``TaskError``) on a breach.

    Checks that its declarations hold (names, namespaced objective, the base recipe in
    bounds, search defaults), that every evaluation's metrics are namespaced numbers,
    that a segment run to its end reports the test metric at its last evaluation and
    trains exactly its steps, that two segments of ``steps`` resumed through a
    ``torch.save`` round trip end exactly (to ``rtol``) like one segment of ``2 * steps``,
    that a segment stopped at its first evaluation returns what it has, and (``knobs``) that
    every knob acts (:func:`check_knobs`). ``steps`` defaults to the preset's ``eval_every``.
    Returns the metrics it saw and the knob checks.
    """
    checked = _checked(task)
    n = steps or checked.search_defaults().eval_every
    recipe = checked.base_recipe()
    horizon = 2 * n
    root = roundtrip(checked.init(seed))
    # one long segment ...
    evals: list[tuple[int, dict[str, float]]] = []
    long = checked.train_segment(roundtrip(root), recipe, Segment(0, 2 * n, horizon, n),
                                 lambda step, m: evals.append((step, dict(m))) or False)
    _need(long.steps_done == 2 * n and not long.stopped, f"a segment of {2 * n} steps ended after {long.steps_done}")
    # ... equals two resumed ones
    first = checked.train_segment(roundtrip(root), recipe, Segment(0, n, horizon, n), lambda s, m: False)
    second = checked.train_segment(roundtrip(first.checkpoint), recipe, Segment(n, n, horizon, n), lambda s, m: False)
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

    stopped: SegmentResult = checked.train_segment(roundtrip(root), recipe, Segment(0, 2 * n, horizon, n),
                                                   stop_first)
    _need(stopped.stopped and len(seen) == 1, f"a segment whose on_eval returned True at step {n} went on "
          f"(stopped={stopped.stopped}, {len(seen)} evaluations); return SegmentResult(..., stopped=True) at once")
    _need(stopped.steps_done == n, f"a segment stopped at step {n} reported steps_done={stopped.steps_done}")
    _need(stopped.metrics == seen[0], "a stopped segment must return the metrics of its last evaluation")
    found = check_knobs(checked, seed=seed, steps=n) if knobs else []
    inert = [k for k in found if k.verdict is KnobVerdict.INERT]
    _need(not inert, "knobs that change nothing: " + "; ".join(k.line() for k in inert))
    return {"long": long.metrics, "resumed": second.metrics, "evaluations": evals, "knobs": found}


# -- knobs that act ------------------------------------------------------------------------
class KnobVerdict(str, enum.Enum):
    ACTS = "acts"  # training at the low and at the high bound differed
    INERT = "inert"  # bit-identical: the knob changes nothing
    SKIPPED = "skipped"  # a bound breaks a constraint with the base recipe's other values


@dataclass(frozen=True)
class KnobCheck:
    """What one knob did to one short segment at its low and at its high bound."""

    knob: str
    low: float
    high: float
    verdict: KnobVerdict
    changed: tuple[str, ...] = ()  # a few of what differed (checkpoint entries, val/test metrics)
    cause: str = ""  # for an inert or skipped knob: the likely cause and the fix

    def line(self) -> str:
        head = f"{self.knob} [{self.low:g} .. {self.high:g}]: {self.verdict.value}"
        if self.verdict is KnobVerdict.ACTS:
            return f"{head} ({', '.join(self.changed)} differ)"
        return f"{head}: {self.cause}"


def likely_cause(knob: Knob) -> str:
    """Why a knob whose bounds train bit-identically most likely does nothing, and where to apply it."""
    where = {
        Role.OPTIMIZER: "set it in optimizer.param_groups after optimizer.load_state_dict (loading restores the "
                        "parent's values) and before every step that uses it",
        Role.REGULARIZATION: "set it where the model reads it each step; a module that reads a plain float "
                             "(e.g. attention's dropout probability kept from its config) is not changed by setting "
                             "nn.Dropout.p, and model.eval() during training switches dropout off",
    }.get(knob.role, "use it where the loss, reward or sampling reads it each step")
    return (f"training was bit-identical with {knob.name}={knob.low:g} and {knob.name}={knob.high:g}, so the knob "
            f"is read once at init (or in a constructor) or never applied; {where}. If it only acts on rare events "
            "this short segment did not meet, check a longer one (steps=N)")


def _leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """The tensors, arrays and byte strings in a checkpoint, by path (plain numbers are left out: a task may
    store the recipe it applied)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    elif isinstance(obj, (torch.Tensor, np.ndarray, bytes, bytearray)):
        yield path, obj


def _digest(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() + f"{t.dtype}{tuple(t.shape)}".encode()
    elif isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value).tobytes() + f"{value.dtype}{value.shape}".encode()
    else:
        data = bytes(value)
    return hashlib.sha256(data).hexdigest()


def _fingerprint(result: SegmentResult) -> dict[str, Any]:
    """What training produced: the checkpoint's tensors, arrays and bytes, and the val/ and test/ metrics
    (train/ and hp/ metrics may echo the recipe without it acting)."""
    out: dict[str, Any] = {f"checkpoint {p}": _digest(v) for p, v in _leaves(result.checkpoint or {})}
    for k, v in result.metrics.items():
        if k.startswith(("val/", "test/")):
            out[k] = "nan" if math.isnan(v) else v
    return out


def check_knobs(task: Task, *, seed: int = 0, steps: int | None = None) -> list[KnobCheck]:
    """Train one segment of ``steps`` (default: the preset's ``eval_every``) from the root with each knob at
    its low and at its high bound (the other knobs at the base recipe) and say, per knob, whether training
    changed. A knob is *inert* when both runs end bit-identical: the same checkpoint tensors, arrays and
    bytes, and the same val/ and test/ metrics."""
    checked = _checked(task)
    n = steps or checked.search_defaults().eval_every
    surface, base = checked.surface, checked.base_recipe()
    root = roundtrip(checked.init(seed))
    found = []
    for knob in surface.knobs:
        prints = []
        for value in (knob.low, knob.high):
            try:
                recipe = surface.check({**base, knob.name: int(value) if knob.integer else value})
            except RecipeError as e:
                found.append(KnobCheck(knob.name, knob.low, knob.high, KnobVerdict.SKIPPED,
                                       cause=f"the base recipe with {knob.name}={value:g} is not admissible ({e})"))
                break
            result = checked.train_segment(roundtrip(root), recipe, Segment(0, n, 2 * n, n), lambda s, m: False)
            prints.append(_fingerprint(result))
        else:
            changed = sorted(k for k in prints[0].keys() | prints[1].keys() if prints[0].get(k) != prints[1].get(k))
            verdict = KnobVerdict.ACTS if changed else KnobVerdict.INERT
            found.append(KnobCheck(knob.name, knob.low, knob.high, verdict, tuple(changed[:3]),
                                   "" if changed else likely_cause(knob)))
    return found


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise TaskCheckFailed(message)


@dataclass
class CheckReport:
    """What ``searchmgr check`` found: the contract (None: kept, else what to fix) and each knob."""

    task: str
    contract: str | None
    knobs: list[KnobCheck]

    @property
    def ok(self) -> bool:
        return self.contract is None and not any(k.verdict is KnobVerdict.INERT for k in self.knobs)

    def render(self) -> str:
        lines = [f"task {self.task}", "contract: " + ("kept (declarations, metrics, exact resume, stop)"
                                                     if self.contract is None else f"BROKEN: {self.contract}")]
        lines += [f"knob {k.line()}" for k in self.knobs]
        inert = [k.knob for k in self.knobs if k.verdict is KnobVerdict.INERT]
        lines.append(f"{len(inert)} knob(s) change nothing: {inert}" if inert else
                     ("every knob acts" if self.knobs else "knobs not checked (fix the contract first)"))
        return "\n".join(lines)


def check(reference: str, options: dict[str, Any] | None = None, *, seed: int = 0,
          steps: int | None = None) -> CheckReport:
    """``searchmgr check``: load the task ``reference`` names with ``options``, check its contract and, if it
    holds, its knobs. Raises ``TaskError`` for a task that cannot be loaded; reports everything else."""
    task = load_task(reference, options)
    try:
        check_task(task, seed=seed, steps=steps, knobs=False)
    except TaskCheckFailed as e:
        return CheckReport(task.source.reference, str(e), [])
    return CheckReport(task.source.reference, None, check_knobs(task, seed=seed, steps=steps))


__all__ = ["CheckReport", "KnobCheck", "KnobVerdict", "TaskCheckFailed", "check", "check_knobs", "check_task",
           "likely_cause"]
