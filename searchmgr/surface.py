"""The action surface: the knobs a task exposes, their bounds and step limits.

Nothing outside the surface can change during a search. A *recipe* is a plain
``dict[str, float | int]`` with a value for every knob; :meth:`ActionSurface.check`
validates one. Cross-knob rules are :class:`Constraint` records (data, not code), so
a prompt, a report or another tool can read them.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Mapping

from searchmgr.errors import UserError

Recipe = dict[str, float]


class Scale(str, enum.Enum):
    """How a knob moves: multiplicatively (``LOG``) or additively (``LINEAR``)."""

    LOG = "log"
    LINEAR = "linear"


class Role(str, enum.Enum):
    """What a knob does to training; analysis compares discovered trajectories with it."""

    CAPACITY = "capacity"
    REGULARIZATION = "regularization"
    EXPLORATION = "exploration"
    OBJECTIVE = "objective"
    OPTIMIZER = "optimizer"


@dataclass(frozen=True)
class Knob:
    """One training control.

    ``max_step`` is the largest relative step one transition may take: for a
    ``LOG`` knob the new value may be at most ``(1 + max_step)`` times larger or
    smaller than the old one; for a ``LINEAR`` knob it may move at most
    ``max_step * (high - low)``.
    """

    name: str
    low: float
    high: float
    scale: Scale
    max_step: float
    role: Role
    effect: str
    integer: bool = False
    caution: str = ""

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"knob {self.name}: low ({self.low}) must be below high ({self.high}); swap the bounds")
        if self.scale is Scale.LOG and self.low <= 0:
            raise ValueError(f"knob {self.name}: a log-scale knob needs low > 0")
        if self.max_step <= 0:
            raise ValueError(f"knob {self.name}: max_step must be positive")

    def in_bounds(self, value: float) -> bool:
        tol = 1e-12 * max(1.0, abs(self.high))
        return self.low - tol <= value <= self.high + tol

    def step_ok(self, old: float, new: float) -> bool:
        """Whether ``old -> new`` respects the step limit."""
        if self.scale is Scale.LOG:
            if old <= 0 or new <= 0:
                return False
            return abs(math.log(new / old)) <= math.log1p(self.max_step) + 1e-9
        limit = self.max_step * (self.high - self.low)
        if self.integer:
            limit = max(limit, 1.0)
        return abs(new - old) <= limit + 1e-9 * max(1.0, abs(self.high))

    def step_limit_text(self) -> str:
        if self.scale is Scale.LOG:
            return f"scale by a factor in [{1 / (1 + self.max_step):.3g}, {1 + self.max_step:.3g}]"
        return f"change by at most {self.max_step * (self.high - self.low):.4g}"

    def normalise(self, value: float) -> float:
        """Position of ``value`` in [0, 1] on the knob's own scale."""
        if self.scale is Scale.LOG:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def at(self, position: float) -> float:
        """The value at ``position`` in [0, 1] on the knob's own scale (rounded for integer knobs)."""
        u = min(max(position, 0.0), 1.0)
        if self.scale is Scale.LOG:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        v = min(max(v, self.low), self.high)
        return float(round(v)) if self.integer else v

    def describe(self) -> dict:
        return {
            "name": self.name,
            "range": [self.low, self.high],
            "scale": self.scale.value,
            "integer": self.integer,
            "step_limit": self.step_limit_text(),
            "role": self.role.value,
            "effect": self.effect,
            "caution": self.caution,
        }


WORDS = ("effect", "caution", "why", "text")  # what explains a knob or a constraint, not what it means
FINGERPRINT_V2 = "v2:"  # a fingerprint of meanings, constraints included (earlier runs: knob descriptions)


class RecipeError(UserError, ValueError):
    """A recipe that does not fit the action surface."""


class ConstraintKind(str, enum.Enum):
    """The cross-knob rules a surface can state."""

    DIVIDES = "divides"  # the one integer knob's value divides ``value`` (trl: num_generations divides the batch)
    AT_MOST = "at_most"  # knobs[0] <= knobs[1] (a floor below a ceiling)
    SUM_AT_MOST = "sum_at_most"  # the knobs' values sum to at most ``value`` (loss weights sharing a budget)


@dataclass(frozen=True)
class Constraint:
    """A cross-knob rule as data: its kind, the knobs it binds, a number, and why it holds."""

    kind: ConstraintKind
    knobs: tuple[str, ...]
    value: float | None = None
    why: str = ""

    def __post_init__(self) -> None:
        arity = {ConstraintKind.DIVIDES: 1, ConstraintKind.AT_MOST: 2}.get(self.kind)
        if arity is not None and len(self.knobs) != arity:
            raise ValueError(f"a {self.kind.value} constraint binds {arity} knob(s), not {list(self.knobs)}")
        if self.kind is ConstraintKind.SUM_AT_MOST and len(self.knobs) < 2:
            raise ValueError(f"a sum_at_most constraint binds two or more knobs, not {list(self.knobs)}")
        if (self.value is None) != (self.kind is ConstraintKind.AT_MOST):
            raise ValueError(f"a {self.kind.value} constraint "
                             + ("takes no value" if self.kind is ConstraintKind.AT_MOST else "needs value="))

    def text(self) -> str:
        """The rule in words (prompts and messages)."""
        k = self.knobs
        rule = {ConstraintKind.DIVIDES: lambda: f"{k[0]} must divide {self.value:g}",
                ConstraintKind.AT_MOST: lambda: f"{k[0]} must be at most {k[1]}",
                ConstraintKind.SUM_AT_MOST: lambda: f"{' + '.join(k)} must be at most {self.value:g}"}[self.kind]()
        return f"{rule} ({self.why})" if self.why else rule

    def violation(self, recipe: Mapping[str, float], knobs: Mapping[str, "Knob"]) -> str | None:
        """``None`` when ``recipe`` keeps the rule, else a message naming the fix."""
        v = [recipe[n] for n in self.knobs]
        if self.kind is ConstraintKind.DIVIDES:
            total, knob = int(self.value), knobs[self.knobs[0]]
            if v[0] >= 1 and total % int(v[0]) == 0:
                return None
            valid = [d for d in range(max(1, math.ceil(knob.low)), int(knob.high) + 1) if total % d == 0]
            return f"{self.knobs[0]}={v[0]:g}: {self.text()}; choose one of {valid}"
        if self.kind is ConstraintKind.AT_MOST:
            return None if v[0] <= v[1] else f"{self.knobs[0]}={v[0]:g} > {self.knobs[1]}={v[1]:g}: {self.text()}"
        total = sum(v)
        return None if total <= self.value + 1e-12 else f"the sum is {total:g}: {self.text()}"

    def describe(self) -> dict:
        return {"kind": self.kind.value, "knobs": list(self.knobs), "value": self.value, "why": self.why,
                "text": self.text()}


@dataclass(frozen=True)
class ActionSurface:
    """The knobs of a task and its cross-knob :class:`Constraint` records."""

    knobs: tuple[Knob, ...]
    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        names = [k.name for k in self.knobs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate knob names in {names}")
        for c in self.constraints:
            unknown = [n for n in c.knobs if n not in names]
            if unknown:
                raise ValueError(f"constraint '{c.text()}' names unknown knob(s) {unknown}; the knobs are {names}")
            if c.kind is ConstraintKind.DIVIDES and not self[c.knobs[0]].integer:
                raise ValueError(f"constraint '{c.text()}' needs an integer knob; declare {c.knobs[0]} integer=True")

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def __getitem__(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(k.name == name for k in self.knobs)

    def check(self, recipe: Mapping[str, float]) -> Recipe:
        """Return a clean copy of ``recipe`` or raise :class:`RecipeError`."""
        missing = [n for n in self.names if n not in recipe]
        extra = [n for n in recipe if n not in self]
        if missing or extra:
            raise RecipeError(f"recipe keys must be exactly {self.names}; missing {missing}, unknown {extra}")
        out: Recipe = {}
        for k in self.knobs:
            v = recipe[k.name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RecipeError(f"{k.name}={v!r} is not a finite number")
            if k.integer and float(v) != int(v):
                raise RecipeError(f"{k.name}={v} must be an integer")
            if not k.in_bounds(v):
                raise RecipeError(f"{k.name}={v} is outside [{k.low}, {k.high}]")
            out[k.name] = int(v) if k.integer else float(v)
        for c in self.constraints:
            problem = c.violation(out, {k.name: k for k in self.knobs})
            if problem:
                raise RecipeError(problem)
        return out

    def fingerprint(self) -> str:
        """A hash of what the stored recipes mean (resume refuses a change): every knob's name, range, scale,
        type, step limit and role, and every constraint's kind, knobs and value -- not the words that explain
        them (rewording a knob's effect or a constraint's reason changes nothing)."""
        meaning = {"knobs": [{k: v for k, v in d.items() if k not in WORDS} for d in self.describe()],
                   "constraints": [{k: v for k, v in c.describe().items() if k not in WORDS}
                                   for c in self.constraints]}
        return FINGERPRINT_V2 + hashlib.sha256(json.dumps(meaning, sort_keys=True).encode()).hexdigest()[:16]

    def legacy_fingerprint(self) -> str:
        """The fingerprint runs stored before constraints were part of it (knob descriptions, words included)."""
        payload = json.dumps([k.describe() for k in self.knobs], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def same_as(self, stored_fingerprint: str) -> bool:
        """Whether a run stored with ``stored_fingerprint`` (either version) means the same by its recipes."""
        if stored_fingerprint.startswith(FINGERPRINT_V2):
            return stored_fingerprint == self.fingerprint()
        return stored_fingerprint == self.legacy_fingerprint()

    def difference(self, stored_knobs: list[dict]) -> str:
        """What changed from a stored description of the knobs (``searches.surface``), in words."""
        now = {d["name"]: d for d in self.describe()}
        before = {d.get("name"): d for d in stored_knobs if isinstance(d, dict)}
        out = [f"knob {n} added" for n in now if n not in before] + \
              [f"knob {n} removed" for n in before if n not in now]
        for name in sorted(set(now) & set(before)):
            for key in sorted(set(now[name]) | set(before[name])):
                if now[name].get(key) != before[name].get(key):
                    out.append(f"{name}.{key}: {before[name].get(key)!r} -> {now[name].get(key)!r}")
        if not out:
            rules = "; ".join(c.text() for c in self.constraints) or "none"
            out.append(f"its constraints (now: {rules})")
        return ", ".join(out)

    def describe(self) -> list[dict]:
        return [k.describe() for k in self.knobs]


def same_recipe(a: Mapping[str, float], b: Mapping[str, float], rel: float = 1e-6) -> bool:
    """Two recipes are the same when every knob agrees to ``rel`` relative tolerance."""
    if a.keys() != b.keys():
        return False
    return all(math.isclose(a[k], b[k], rel_tol=rel, abs_tol=1e-12) for k in a)
