"""The response schema of one request: what is admissible for a child of this parent, and nothing else.

The generic decision schema (:func:`searchmgr.decision.decision_schema`) lets a model
name any knob with any value. Servers that constrain decoding to a JSON schema
(llama.cpp, vLLM, OpenAI structured outputs) can only keep a small model admissible if
the schema itself says what is admissible, so :func:`request_schema` builds it per
request from the parent's recipe:

- ``updates`` lists every knob once, in the surface's order (``prefixItems``; knob
  names as one-value ``enum``\\ s), so no knob is unknown or repeated;
- per knob the op is the knob's own (``scale`` for log-scale knobs, ``add`` for
  linear ones) or ``hold``, and ``value`` has the range that the knob's current value,
  its bounds and its step limit allow (:func:`admissible_range`; for integer knobs the
  range whose rounded results stay admissible), and an ``enum`` of five values across
  it (:meth:`ValueRange.grid`): grammar-constrained decoders such as llama.cpp's enforce
  ``enum`` but ignore ``minimum``/``maximum`` on numbers (measured: SmolLM2 under
  llama-cpp-python's server answered ``dropout +2.03`` to the range alone);
- ``control_audit`` names knobs from the surface's ``enum``;
- with siblings (children of the parent already tried), ``updates`` is an ``anyOf``:
  alternative *i* lets knob *i* take only values that no sibling has there (the others
  stay free), so every answer differs from every sibling in at least one knob and none
  repeats a recipe already tried. A small model that keeps proposing the same change
  (measured: 13 of 14 SmolLM2 rejections on toy were duplicate siblings) can then only
  propose a new one. Answers that differ from each sibling in a different knob are left
  out; the schema stays a subset of what is admissible.

It narrows nothing the verifier does: every answer still goes through
:func:`searchmgr.decision.verify`, which also checks what a schema cannot say
(cross-knob constraints). Every decision the schema admits is one the verifier admits
on a surface without a cross-knob constraint (tests/managers/test_request_schema.py
checks that property, with and without siblings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from searchmgr.decision import moved
from searchmgr.surface import ActionSurface, Knob, Scale


@dataclass(frozen=True)
class ValueRange:
    """The op a knob is moved with and the closed range of its ``value`` (a factor or a delta)."""

    op: Literal["scale", "add"]
    low: float
    high: float

    @property
    def neutral(self) -> float:
        return 1.0 if self.op == "scale" else 0.0

    def grid(self) -> list[float]:
        """Five values across the range: its ends, the neutral value (1 or 0) and a point halfway to each end
        (geometric for factors), as short decimals; all inside the range."""
        lo, hi, mid = self.low, self.high, self.neutral
        half = (lambda a, b: math.sqrt(a * b)) if self.op == "scale" else (lambda a, b: (a + b) / 2)
        out = []
        for v in (lo, half(lo, mid), mid, half(mid, hi), hi):
            short = float(f"{v:.3g}")
            v = short if lo <= short <= hi else v
            if v not in out:
                out.append(v)
        return out

    def text(self) -> str:
        what = "factor" if self.op == "scale" else "delta"
        return f"{self.op} with a {what} in [{self.low:.6g}, {self.high:.6g}] (one of {self.grid()})"


def _inward(low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` rounded inward to 6 significant digits where that keeps it (readable in prompts and
    grammars), else to more."""
    for digits in (6, 8, 10, 12):
        lo, hi = float(f"{low:.{digits}g}"), float(f"{high:.{digits}g}")
        if low <= lo <= hi <= high:
            return lo, hi
    return low, high


def admissible_range(knob: Knob, value: float) -> ValueRange:
    """The values of the knob's op that keep ``value`` in bounds and within the step limit."""
    if knob.scale is Scale.LOG:
        up = 1 + knob.max_step
        if knob.integer:  # the verifier rounds value * factor: allow the factors of admissible integers only
            lo_n = max(math.ceil(value / up - 1e-9), math.ceil(knob.low))
            hi_n = min(math.floor(value * up + 1e-9), math.floor(knob.high))
            return ValueRange("scale", *_inward(lo_n / value, hi_n / value))
        return ValueRange("scale", *_inward(max(1 / up, knob.low / value), min(up, knob.high / value)))
    limit = knob.max_step * (knob.high - knob.low)
    if knob.integer:  # the verifier rounds value + delta and allows integer knobs a step of at least 1
        limit = max(limit, 1.0)
        lo_n = max(math.ceil(value - limit - 1e-9), math.ceil(knob.low))
        hi_n = min(math.floor(value + limit + 1e-9), math.floor(knob.high))
        return ValueRange("add", *_inward(lo_n - value, hi_n - value))
    return ValueRange("add", *_inward(max(-limit, knob.low - value), min(limit, knob.high - value)))


def admissible_ranges(surface: ActionSurface, parent: Mapping[str, float]) -> dict[str, ValueRange]:
    return {k.name: admissible_range(k, parent[k.name]) for k in surface.knobs}


def _update(name: str, ops: list[str], values: list[float], r: ValueRange | None = None) -> dict:
    value: dict = {"type": "number", "enum": values}
    if r is not None:
        value.update(minimum=r.low, maximum=r.high)
    return {
        "type": "object",
        "properties": {"knob": {"type": "string", "enum": [name]}, "op": {"type": "string", "enum": ops},
                       "value": value},
        "required": ["knob", "op", "value"],
        "additionalProperties": False,
    }


def _unlike(knob: Knob, value: float, r: ValueRange, taken: list[float]) -> dict | None:
    """Knob ``knob``'s update restricted to results that no sibling has (None when there is none)."""
    def new(v: float) -> bool:
        return not any(math.isclose(v, t, rel_tol=1e-6, abs_tol=1e-12) for t in taken)

    values = [x for x in r.grid() if new(moved(knob, value, r.op, x))]
    hold = new(value)
    if values:
        return _update(knob.name, [r.op, "hold"] if hold else [r.op], values, r)
    return _update(knob.name, ["hold"], r.grid()) if hold else None


def request_schema(surface: ActionSurface, parent: Mapping[str, float],
                   siblings: Sequence[Mapping[str, float]] = ()) -> dict:
    """The JSON schema of a decision admissible for a child of ``parent`` beside ``siblings`` (see the module
    docstring)."""
    ranges = admissible_ranges(surface, parent)
    items = [_update(name, [r.op, "hold"], r.grid(), r) for name, r in ranges.items()]
    n = len(items)
    updates: dict = {"type": "array", "prefixItems": items, "minItems": n, "maxItems": n}
    if siblings:
        alternatives = []
        for i, k in enumerate(surface.knobs):
            only = _unlike(k, parent[k.name], ranges[k.name], [s[k.name] for s in siblings])
            if only is not None:
                alternatives.append({**updates, "prefixItems": [*items[:i], only, *items[i + 1:]]})
        if alternatives:  # none: every value of every knob is taken; the verifier rejects the duplicate
            updates = {"anyOf": alternatives}
    return {
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string"},
            "control_audit": {"type": "array", "items": {
                "type": "object",
                "properties": {"knob": {"type": "string", "enum": surface.names},
                               "verdict": {"type": "string", "enum": ["selected", "rejected", "deferred"]},
                               "reason": {"type": "string"}},
                "required": ["knob", "verdict", "reason"],
                "additionalProperties": False}},
            "updates": updates,
            "expected_outcome": {"type": "string"},
            "watch_items": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["diagnosis", "control_audit", "updates", "expected_outcome", "watch_items"],
        "additionalProperties": False,
    }


def render_ranges(surface: ActionSurface, parent: Mapping[str, float]) -> str:
    """The admissible updates as prompt lines (one per knob, in the order the schema lists them)."""
    return "\n".join(f"- {name}: {r.text()}, or hold" for name, r in admissible_ranges(surface, parent).items())


OWN = "own"  # the choice that proposes its own bounded change (manager.own=true)
REASON_CHARS = 300  # the longest reason a chooser's schema admits


def choice_schema(ids: Sequence[int], own_updates: dict | None = None) -> dict:
    """The answer of a chooser (``model_llm``): ``choice`` is one of ``ids`` (an ``enum``, so a constrained decoder
    cannot name anything else) with a ``reason``. With ``own_updates`` (the ``updates`` schema of
    :func:`request_schema`) the answer may instead be ``choice: "own"`` with its own bounded updates."""
    reason = {"type": "string", "maxLength": REASON_CHARS}
    pick = {"type": "object",
            "properties": {"choice": {"type": "integer", "enum": list(ids)}, "reason": reason},
            "required": ["choice", "reason"], "additionalProperties": False}
    if own_updates is None:
        return pick
    own = {"type": "object",
           "properties": {"choice": {"type": "string", "enum": [OWN]}, "reason": reason, "updates": own_updates},
           "required": ["choice", "reason", "updates"], "additionalProperties": False}
    return {"anyOf": [pick, own]}
