"""Capacity versus regularization: classify knob trajectories and test the hypothesis on a run.

Trajectory labels
-----------------
A trajectory is the knob's values ``v_1 .. v_n`` over the trained segments of a
path (see :mod:`searchmgr.analysis.trajectories`). It is judged on the knob's own
scale and relative to the knob's range, so one tolerance fits every knob:

1. ``u_i = ln(v_i)`` for log-scale knobs, ``u_i = v_i`` for linear ones; the span
   is ``S = u(high) - u(low)``; the normalised trajectory is ``x_i = u_i / S``
   (so a move of 0.1 is a tenth of the knob's range on its scale).
2. **amplitude** ``A = max(x) - min(x)``: the share of the range the path traverses.
3. **reversals** ``R``: a zigzag filter with threshold ``tol`` walks the ``x_i``.
   Until a direction is known it tracks the lowest and highest value seen; the
   first value more than ``tol`` above that low (below that high) sets the
   direction up (down). Then it tracks the extreme in that direction; a value
   more than ``tol`` back from the extreme is one reversal, flips the direction
   and restarts the extreme there. Moves of at most ``tol`` never count, so
   noise-sized wiggles and slow drifts are handled alike.
4. The label, with ``tol = 0.02`` (2 % of the range) by default:

   * ``constant``: ``n < 2`` or ``A <= tol``;
   * ``monotone increasing`` / ``monotone decreasing``: ``A > tol`` and ``R == 0``
     (the direction is the one the filter found);
   * ``oscillating``: ``R >= 1``.

The numbers beside the label: ``A``, ``R``, **net relative change**
``v_n / v_1 - 1`` (``None`` when ``v_1 == 0``, common for a linear knob such as
dropout starting at 0) and **net range change** ``x_n - x_1`` (signed, in units of
the knob's range on its scale, always defined).

Verdict on "capacity accumulates, regularization oscillates"
-----------------------------------------------------------
Only knobs whose declared role is ``capacity`` or ``regularization`` take part
(the others are reported, not judged). A knob is *evidence* when

* its best-path label is not ``constant``,
* the best path has at least ``min_segments`` (3) trained segments (with fewer,
  an oscillation cannot be seen), and
* at least half of the top-k paths (the best one included) carry the same label.

Evidence *conforms* when a capacity knob is ``monotone increasing`` or a
regularization knob is ``oscillating``; anything else *contradicts*. Each part
(capacity, regularization) is ``supported`` (some evidence, all conforming),
``contradicted`` (some evidence, none conforming), ``mixed`` or ``untested`` (no
evidence). The run

* **supports** the hypothesis when some part is supported and no part is
  contradicted or mixed;
* **contradicts** it when some part is contradicted and no part is supported or
  mixed;
* is **inconclusive** otherwise (nothing tested, a mixed part, or one part
  supported while the other is contradicted).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from searchmgr.analysis.run import KnobInfo, RunData
from searchmgr.analysis.trajectories import knob_values
from searchmgr.surface import Role

TOL = 0.02
MIN_SEGMENTS = 3


class Label(str, enum.Enum):
    INCREASING = "monotone increasing"
    DECREASING = "monotone decreasing"
    OSCILLATING = "oscillating"
    CONSTANT = "constant"

    @property
    def short(self) -> str:
        return {"monotone increasing": "up", "monotone decreasing": "down", "oscillating": "osc",
                "constant": "const"}[self.value]


class Part(str, enum.Enum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    MIXED = "mixed"
    UNTESTED = "untested"


class Verdict(str, enum.Enum):
    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Trajectory:
    """One knob's trajectory along one path, its label and the numbers behind it."""

    knob: str
    values: tuple[float, ...]
    label: Label
    amplitude: float  # share of the knob's range traversed (on its scale)
    reversals: int
    net_rel: float | None  # v_n / v_1 - 1, None when v_1 == 0
    net_range: float  # (x_n - x_1): signed net change in units of the range


def zigzag(xs: Sequence[float], tol: float) -> tuple[int, int]:
    """``(reversals, first direction)`` of ``xs`` under a zigzag filter with threshold ``tol``.

    The direction is +1 (up), -1 (down) or 0 when no move ever exceeded ``tol``.
    """
    if not xs:
        return 0, 0
    first = direction = 0
    lo = hi = extreme = xs[0]
    reversals = 0
    for x in xs[1:]:
        if direction == 0:
            lo, hi = min(lo, x), max(hi, x)
            if x - lo > tol:
                direction, extreme = 1, x
            elif hi - x > tol:
                direction, extreme = -1, x
            first = direction
        elif direction == 1:
            if x > extreme:
                extreme = x
            elif extreme - x > tol:
                reversals, direction, extreme = reversals + 1, -1, x
        else:
            if x < extreme:
                extreme = x
            elif x - extreme > tol:
                reversals, direction, extreme = reversals + 1, 1, x
    return reversals, first


def classify(values: Sequence[float], knob: KnobInfo, tol: float = TOL) -> Trajectory:
    """Label one trajectory by the rules of the module docstring."""
    vals = tuple(float(v) for v in values)
    xs = [knob.transform(v) / knob.span for v in vals]
    amplitude = (max(xs) - min(xs)) if xs else 0.0
    reversals, direction = zigzag(xs, tol)
    if len(xs) < 2 or amplitude <= tol:
        label, reversals = Label.CONSTANT, 0
    elif reversals == 0:
        label = Label.INCREASING if direction > 0 else Label.DECREASING
    else:
        label = Label.OSCILLATING
    net_rel = (vals[-1] / vals[0] - 1.0) if vals and vals[0] != 0 else None
    net_range = (xs[-1] - xs[0]) if xs else 0.0
    return Trajectory(knob.name, vals, label, amplitude, reversals, net_rel, net_range)


@dataclass(frozen=True)
class KnobResult:
    """A knob's label on the best path, with the top-k paths' labels and the evidence it gives."""

    knob: str
    role: Role
    best: Trajectory
    top: tuple[Trajectory, ...]  # best path first
    agreement: int  # top-k paths whose label equals the best path's
    evidence: bool
    conforms: bool | None  # None for knobs outside capacity/regularization or without evidence

    @property
    def k(self) -> int:
        return len(self.top)

    @property
    def distribution(self) -> dict[str, int]:
        return dict(Counter(t.label.value for t in self.top))


@dataclass(frozen=True)
class Analysis:
    """The classification of a run's knobs and the verdict on the hypothesis."""

    knobs: tuple[KnobResult, ...]
    capacity: Part
    regularization: Part
    verdict: Verdict
    reason: str
    segments: int
    k: int
    tol: float = TOL
    notes: tuple[str, ...] = field(default_factory=tuple)


def _part(results: Sequence[KnobResult], role: Role) -> Part:
    ev = [r for r in results if r.role is role and r.evidence]
    if not ev:
        return Part.UNTESTED
    conform = sum(bool(r.conforms) for r in ev)
    if conform == len(ev):
        return Part.SUPPORTED
    return Part.CONTRADICTED if conform == 0 else Part.MIXED


def verdict(capacity: Part, regularization: Part) -> Verdict:
    """The run-level verdict from the two parts (rules in the module docstring)."""
    parts = (capacity, regularization)
    if Part.MIXED in parts:
        return Verdict.INCONCLUSIVE
    if Part.SUPPORTED in parts and Part.CONTRADICTED not in parts:
        return Verdict.SUPPORTS
    if Part.CONTRADICTED in parts and Part.SUPPORTED not in parts:
        return Verdict.CONTRADICTS
    return Verdict.INCONCLUSIVE


def analyse_paths(paths: Sequence[Sequence], knobs: Sequence[KnobInfo], tol: float = TOL,
                  min_segments: int = MIN_SEGMENTS) -> Analysis:
    """Classify every knob along ``paths`` (best first, each root first) and judge the hypothesis."""
    if not paths:
        return Analysis((), Part.UNTESTED, Part.UNTESTED, Verdict.INCONCLUSIVE, "no finished path to analyse",
                        0, 0, tol)
    n_segments = len(knob_values(paths[0], knobs[0].name)) if knobs else 0
    results = []
    for kn in knobs:
        top = tuple(classify(knob_values(p, kn.name), kn, tol) for p in paths)
        best = top[0]
        agreement = sum(t.label is best.label for t in top)
        judged = kn.role in (Role.CAPACITY, Role.REGULARIZATION)
        evidence = (judged and best.label is not Label.CONSTANT and n_segments >= min_segments
                    and 2 * agreement >= len(top))
        conforms = None
        if evidence:
            want = Label.INCREASING if kn.role is Role.CAPACITY else Label.OSCILLATING
            conforms = best.label is want
        results.append(KnobResult(kn.name, kn.role, best, top, agreement, evidence, conforms))
    cap, reg = _part(results, Role.CAPACITY), _part(results, Role.REGULARIZATION)
    v = verdict(cap, reg)
    notes = []
    if not any(k.role is Role.CAPACITY for k in knobs):
        notes.append("the task exposes no capacity knob, so the capacity part cannot be tested")
    if not any(k.role is Role.REGULARIZATION for k in knobs):
        notes.append("the task exposes no regularization knob, so the regularization part cannot be tested")
    if n_segments < min_segments:
        notes.append(f"the best path has {n_segments} segment(s); at least {min_segments} are needed to see an "
                     "oscillation, so no knob counts as evidence")
    return Analysis(tuple(results), cap, reg, v, _reason(results, cap, reg, v), n_segments, len(paths), tol,
                    tuple(notes))


def _reason(results: Sequence[KnobResult], cap: Part, reg: Part, v: Verdict) -> str:
    def words(role: Role) -> str:
        rs = [r for r in results if r.role is role]
        if not rs:
            return "none declared"
        return ", ".join(f"{r.knob} {r.best.label.value} ({r.agreement}/{r.k} agree"
                         + ("" if r.evidence else ", not evidence") + ")" for r in rs)

    return (f"capacity {cap.value} [{words(Role.CAPACITY)}]; regularization {reg.value} "
            f"[{words(Role.REGULARIZATION)}] -> {v.value}")


def analyse_run(run: RunData, k: int = 5, tol: float = TOL, min_segments: int = MIN_SEGMENTS) -> Analysis:
    """Classify the knobs of ``run`` along its best path and its top-``k`` paths."""
    return analyse_paths(run.top_paths(k), run.knobs, tol, min_segments)
