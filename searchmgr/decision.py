"""The decision schema every manager emits, and the verifier that admits or rejects it.

A decision is never trusted: :func:`verify` parses a raw response (text or dict),
checks it against the action surface and the parent's siblings, and returns either
the child recipe or a named :class:`Rejection`. A rejected decision never changes
training; the search stores it with its reason. :func:`verify` never raises: an
answer of any shape (deeply nested, huge, not JSON) becomes a rejection.

Sizes are capped (:mod:`searchmgr.sanitize`): an answer longer than
``MAX_ANSWER_CHARS`` is rejected unread; an admitted decision's free text is cut to
``MAX_FIELD_CHARS`` (diagnosis, expected outcome) or ``MAX_SHORT_CHARS`` (audit
reasons, watch items; at most ``MAX_ITEMS`` of each list), because it is stored and
re-sent in the prompt of every descendant.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from searchmgr.sanitize import MAX_ANSWER_CHARS, MAX_FIELD_CHARS, MAX_SHORT_CHARS, cap
from searchmgr.surface import ActionSurface, Knob, Recipe, RecipeError, Scale, same_recipe

MAX_ITEMS = 32  # most audit entries, updates or watch items one decision may carry


class KnobUpdate(BaseModel):
    """One knob's change: multiply (``scale``), add (``add``) or keep (``hold``)."""

    model_config = ConfigDict(extra="forbid")

    knob: str = Field(description="name of a knob of the action surface")
    op: Literal["scale", "add", "hold"] = Field(description="scale: multiply by value; add: add value; hold: keep")
    value: float = Field(1.0, description="factor for scale, delta for add; ignored for hold")


class AuditEntry(BaseModel):
    """Per-knob control audit: was the knob selected, rejected or deferred, and why."""

    model_config = ConfigDict(extra="forbid")

    knob: str
    verdict: Literal["selected", "rejected", "deferred"]
    reason: str

    @field_validator("knob", "reason")
    @classmethod
    def _short(cls, v: str) -> str:
        return cap(v, MAX_SHORT_CHARS)


class Decision(BaseModel):
    """A manager's proposal for the next segment of training."""

    model_config = ConfigDict(extra="forbid")

    diagnosis: str = Field(description="what the telemetry shows, in one or two sentences")
    control_audit: list[AuditEntry] = Field(max_length=MAX_ITEMS, description="one entry per knob considered")
    updates: list[KnobUpdate] = Field(max_length=MAX_ITEMS, description="knobs to change; knobs not listed are held")
    expected_outcome: str = Field(description="what the next evaluation should show if the diagnosis is right")
    watch_items: list[str] = Field(default_factory=list, max_length=MAX_ITEMS,
                                   description="signals to check next time")

    @field_validator("diagnosis", "expected_outcome")
    @classmethod
    def _field(cls, v: str) -> str:
        return cap(v, MAX_FIELD_CHARS)

    @field_validator("watch_items")
    @classmethod
    def _items(cls, v: list[str]) -> list[str]:
        return [cap(x, MAX_SHORT_CHARS) for x in v]

    @classmethod
    def hold(cls, surface: ActionSurface, diagnosis: str = "healthy; keep the recipe") -> "Decision":
        return cls(
            diagnosis=diagnosis,
            control_audit=[AuditEntry(knob=n, verdict="deferred", reason="no change needed") for n in surface.names],
            updates=[],
            expected_outcome="the current trend continues",
            watch_items=[],
        )


def decision_schema() -> dict:
    """The JSON schema of :class:`Decision` (for structured-output requests and prompts)."""
    return Decision.model_json_schema()


class RejectionKind(str, enum.Enum):
    MALFORMED_JSON = "malformed_json"
    TOO_LONG = "too_long"
    MISSING_FIELDS = "missing_fields"
    UNKNOWN_KNOB = "unknown_knob"
    OUT_OF_BOUNDS = "out_of_bounds"
    STEP_TOO_LARGE = "step_too_large"
    DUPLICATE_SIBLING = "duplicate_sibling"
    CONSTRAINT = "constraint"


@dataclass(frozen=True)
class Rejection:
    kind: RejectionKind
    reason: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    """The verifier's answer: ``recipe`` and ``decision`` when admitted, else ``rejection`` (stored as a decision
    row's :class:`searchmgr.store.DecisionVerdict`, accepted or rejected)."""

    decision: Decision | None
    recipe: Recipe | None
    rejection: Rejection | None

    @property
    def ok(self) -> bool:
        return self.rejection is None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """Find the JSON object in a model's text: bare, in a code fence, or amid prose."""
    text = text.strip()
    candidates = [text] + _FENCE.findall(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to be a decision
            continue
    raise ValueError("no JSON object found in the response")


def _reject(kind: RejectionKind, reason: str, decision: Decision | None = None) -> Verification:
    return Verification(decision, None, Rejection(kind, cap(reason, MAX_FIELD_CHARS)))


def update_between(knob: Knob, old: float, new: float) -> KnobUpdate | None:
    """The update that takes ``knob`` from ``old`` to ``new`` (a factor on a log knob, a delta otherwise), or None
    when they are the same value."""
    if math.isclose(new, old, rel_tol=1e-12, abs_tol=1e-15):
        return None
    if knob.scale is Scale.LOG and old > 0 and new > 0:
        return KnobUpdate(knob=knob.name, op="scale", value=new / old)
    return KnobUpdate(knob=knob.name, op="add", value=new - old)


def moved(knob: Knob, old: float, op: str, value: float) -> float:
    """The knob's new value after ``op`` with ``value`` (a factor or a delta; integer knobs are rounded)."""
    if op == "hold":
        return old
    new = old * value if op == "scale" else old + value
    return float(round(new)) if knob.integer else new


def verify(
    raw: str | Mapping[str, Any] | Decision,
    surface: ActionSurface,
    parent: Mapping[str, float],
    siblings: Sequence[Mapping[str, float]] = (),
) -> Verification:
    """Turn a raw response into a child recipe of ``parent`` or a named rejection."""
    # parse
    if isinstance(raw, Decision):
        decision = raw
    else:
        if isinstance(raw, (str, bytes)):
            if len(raw) > MAX_ANSWER_CHARS:
                return _reject(RejectionKind.TOO_LONG, f"the answer has {len(raw)} characters; at most "
                               f"{MAX_ANSWER_CHARS} are read: answer with the JSON object only")
            try:
                data = extract_json(raw.decode() if isinstance(raw, bytes) else raw)
            except (ValueError, UnicodeDecodeError) as e:
                return _reject(RejectionKind.MALFORMED_JSON, str(e))
        else:
            data = raw
        if not isinstance(data, Mapping):
            return _reject(RejectionKind.MALFORMED_JSON, f"expected a JSON object, got {type(data).__name__}")
        try:
            decision = Decision.model_validate(dict(data))
        except RecursionError:
            return _reject(RejectionKind.MALFORMED_JSON, "the answer is nested too deeply")
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'decision'}: {err['msg']}" for err in e.errors()[:5])
            return _reject(RejectionKind.MISSING_FIELDS, problems)
    # apply the updates, knob by knob
    child = dict(parent)
    seen: set[str] = set()
    for u in decision.updates:
        if u.knob not in surface:
            return _reject(RejectionKind.UNKNOWN_KNOB, f"{cap(repr(u.knob), 80)} is not a knob; knobs are "
                           f"{surface.names}", decision)
        if u.knob in seen:
            return _reject(RejectionKind.MISSING_FIELDS, f"knob {u.knob!r} is updated twice", decision)
        seen.add(u.knob)
        knob = surface[u.knob]
        old = parent[u.knob]
        if not math.isfinite(u.value):
            return _reject(RejectionKind.OUT_OF_BOUNDS, f"{u.knob}: value {u.value} is not finite", decision)
        if u.op == "hold":
            continue
        new = moved(knob, old, u.op, u.value)
        if not knob.in_bounds(new):
            return _reject(
                RejectionKind.OUT_OF_BOUNDS,
                f"{u.knob}: {old:g} -> {new:g} leaves the range [{knob.low:g}, {knob.high:g}]", decision)
        if not knob.step_ok(old, new):
            return _reject(
                RejectionKind.STEP_TOO_LARGE,
                f"{u.knob}: {old:g} -> {new:g} is too large a step; {knob.step_limit_text()}", decision)
        child[u.knob] = new
    try:
        child = surface.check(child)
    except RecipeError as e:
        return _reject(RejectionKind.CONSTRAINT, str(e), decision)
    for s in siblings:
        if same_recipe(child, s):
            return _reject(
                RejectionKind.DUPLICATE_SIBLING,
                "this recipe was already tried from the same parent; propose a different change", decision)
    return Verification(decision, child, None)
