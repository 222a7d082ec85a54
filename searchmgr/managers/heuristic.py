"""``heuristic``: a deterministic expert that reads telemetry the way a practitioner would.

It builds a ranked list of candidate decisions from the parent's telemetry summary
(overfitting, divergence, plateaus, collapsed exploration, collisions, KL blow-up)
and answers with the first one whose child recipe differs from every sibling, so
repeated visits to one parent try different things. The offline default manager.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from searchmgr.decision import AuditEntry, Decision, KnobUpdate, verify
from searchmgr.managers.base import Manager, Proposal, ProposalContext
from searchmgr.surface import ActionSurface, Knob, Role, Scale
from searchmgr.objective import Family

UP, DOWN = 1, -1


@dataclass(frozen=True)
class Move:
    knob: str
    direction: int
    fraction: float = 1.0  # of the knob's step limit


@dataclass(frozen=True)
class Candidate:
    diagnosis: str
    moves: tuple[Move, ...]
    expected: str
    watch: tuple[str, ...] = ()


def knob_update(knob: Knob, value: float, move: Move) -> KnobUpdate | None:
    """The update that moves ``knob`` from ``value`` by ``move``, clipped to bounds (None if it cannot move)."""
    if knob.scale is Scale.LOG:
        target = value * (1 + knob.max_step * move.fraction) ** move.direction
        target = min(max(target, knob.low), knob.high)
        if knob.integer:
            target = float(round(target))
        if math.isclose(target, value, rel_tol=1e-9):
            return None
        return KnobUpdate(knob=knob.name, op="scale", value=target / value)
    delta = move.direction * move.fraction * knob.max_step * (knob.high - knob.low)
    target = min(max(value + delta, knob.low), knob.high)
    if knob.integer:
        target = float(round(target))
    if math.isclose(target, value, rel_tol=1e-9, abs_tol=1e-12):
        return None
    return KnobUpdate(knob=knob.name, op="add", value=target - value)


def _by_role(surface: ActionSurface, *roles: Role) -> list[str]:
    return [k.name for k in surface.knobs if k.role in roles]


def _named(surface: ActionSurface, *words: str) -> list[str]:
    return [k.name for k in surface.knobs if any(w in k.name for w in words)]


def _last(ctx: ProposalContext, *words: str) -> float | None:
    """The last value of the first telemetry key (val before train) containing all ``words``."""
    keys = sorted(ctx.telemetry.last, key=lambda k: (not k.startswith("val/"), k))
    for k in keys:
        if all(w in k for w in words) and not k.startswith("test/"):
            return ctx.telemetry.last[k]
    return None


def _moves(names: Sequence[str], direction: int, fraction: float = 1.0) -> tuple[Move, ...]:
    return tuple(Move(n, direction, fraction) for n in names)


def supervised_candidates(ctx: ProposalContext) -> list[Candidate]:
    s, surface = ctx.telemetry, ctx.surface
    reg = _by_role(surface, Role.REGULARIZATION)
    lr = _by_role(surface, Role.OPTIMIZER)
    out: list[Candidate] = []
    if s.diverged:
        out.append(Candidate("training is unstable: validation blew up or went non-finite", _moves(lr, DOWN),
                             "losses fall again at a lower learning rate", ("train/loss", "val/loss")))
    if s.overfitting or (s.gap is not None and (s.gap_slope or 0) > 0 and s.plateau):
        out.append(Candidate("overfitting: validation worsens while training loss keeps falling",
                             _moves(reg, UP), "the train/validation gap stops growing and validation improves",
                             ("val/loss slope", "train/val gap")))
        out += [Candidate("overfitting; try one regularizer at a time", (Move(n, UP),),
                          "validation stops worsening", ("train/val gap",)) for n in reg]
        out.append(Candidate("overfitting; slow memorisation with a lower learning rate", _moves(lr, DOWN),
                             "validation degrades more slowly", ("val/loss slope",)))
    elif s.plateau:
        out.append(Candidate("validation has plateaued without a growing gap", _moves(reg, DOWN, 0.5) + _moves(lr, UP, 0.5),
                             "validation resumes improving", ("val/loss slope",)))
    else:
        out.append(Candidate("healthy: validation still improving", (), "the current trend continues",
                             ("val/loss slope",)))
    # alternatives so that repeated visits explore different directions
    out += [
        Candidate("alternative: more regularization", _moves(reg, UP, 0.5), "a smaller generalisation gap"),
        Candidate("alternative: lower learning rate", _moves(lr, DOWN, 0.5), "smoother, slower progress"),
        Candidate("alternative: higher learning rate", _moves(lr, UP, 0.5), "faster progress"),
        Candidate("alternative: less regularization", _moves(reg, DOWN, 0.5), "faster fitting"),
    ]
    return out


def rl_candidates(ctx: ProposalContext) -> list[Candidate]:
    surface, s = ctx.surface, ctx.telemetry
    explore = _by_role(surface, Role.EXPLORATION)
    lr = _by_role(surface, Role.OPTIMIZER)
    safety = _named(surface, "safety", "penalty")
    std_knob = next((surface[n] for n in _named(surface, "std")), None)
    std = _last(ctx, "action_std")
    success = _last(ctx, "safe_success")
    collision = _last(ctx, "collision")
    obj_slope = s.slopes.get(ctx.objective.metric, 0.0)
    out: list[Candidate] = []
    low_noise = std is not None and std_knob is not None and std_knob.normalise(max(std, std_knob.low)) < 0.55
    high_noise = std is not None and std_knob is not None and std_knob.normalise(min(std, std_knob.high)) > 0.85
    stalled = success is not None and success < 0.9 and obj_slope <= 0.0
    slow = any(surface[n].normalise(ctx.parent_recipe[n]) < 0.5 for n in lr)  # lower half of the lr range
    if stalled and low_noise and slow:
        out.append(Candidate("exploration has collapsed and the actor learns slowly: tiny action noise, a low "
                             "learning rate and no progress in safe success", _moves(explore, UP) + _moves(lr, UP),
                             "more varied episodes, faster policy change and rising success",
                             ("action_std", "entropy", "safe_success")))
    if stalled and low_noise:
        out.append(Candidate("exploration has collapsed: tiny action noise and no progress in safe success",
                             _moves(explore, UP), "more varied episodes and rising success", ("action_std", "entropy")))
        out.append(Candidate("raise action noise only", _moves(_named(surface, "std"), UP),
                             "more varied episodes", ("action_std",)))
    if collision is not None and collision > 0.3 and safety:
        out.append(Candidate("many episodes end in collision", _moves(safety, UP),
                             "collision rate falls", ("collision rate",)))
    if high_noise and (success is None or success < 0.9):
        out.append(Candidate("actions are too noisy to reach the target reliably", _moves(explore, DOWN),
                             "steadier trajectories and higher success", ("action_std", "safe_success")))
    if stalled and not low_noise and not high_noise:
        out.append(Candidate("no progress at moderate exploration: learn faster", _moves(lr, UP),
                             "safe success starts rising", ("safe_success",)))
    if not out:
        out.append(Candidate("healthy: success still improving", (), "the current trend continues", ("safe_success",)))
    out += [
        Candidate("alternative: more exploration", _moves(explore, UP, 0.5), "more varied behaviour"),
        Candidate("alternative: less exploration", _moves(explore, DOWN, 0.5), "steadier behaviour"),
        Candidate("alternative: faster actor", _moves(lr, UP, 0.5), "faster policy change"),
        Candidate("alternative: slower actor", _moves(lr, DOWN, 0.5), "more stable policy change"),
        Candidate("alternative: stronger safety penalty", _moves(safety, UP, 0.5), "fewer collisions"),
    ]
    return out


def grpo_candidates(ctx: ProposalContext) -> list[Candidate]:
    surface, s = ctx.surface, ctx.telemetry
    reward_std = _last(ctx, "reward_std")
    kl = _last(ctx, "kl")
    temp = _named(surface, "temperature")
    beta = _named(surface, "beta")
    lr = _by_role(surface, Role.OPTIMIZER)
    capacity = _by_role(surface, Role.CAPACITY)
    obj_slope = s.slopes.get(ctx.objective.metric, 0.0)
    out: list[Candidate] = []
    if s.diverged or (kl is not None and kl > 0.5):
        out.append(Candidate("the policy drifts too far from the reference (KL blow-up)", _moves(beta, UP) + _moves(lr, DOWN),
                             "KL settles and accuracy stops dropping", ("kl", "val/accuracy")))
    if reward_std is not None and reward_std < 0.05:
        out.append(Candidate("reward variance has collapsed: groups give no learning signal",
                             _moves(temp, UP) + tuple(Move(n, UP) for n in _named(surface, "generations")),
                             "reward std rises and accuracy moves again", ("reward_std",)))
    if obj_slope <= 0 and not out:
        out.append(Candidate("no progress in validation accuracy", _moves(lr, UP), "accuracy starts rising",
                             ("val/accuracy",)))
    if not out:
        out.append(Candidate("healthy: accuracy still improving", (), "the current trend continues", ("val/accuracy",)))
    out += [
        Candidate("alternative: more exploration", _moves(temp, UP, 0.5), "more diverse completions"),
        Candidate("alternative: stronger KL anchor", _moves(beta, UP, 0.5), "more conservative updates"),
        Candidate("alternative: lower learning rate", _moves(lr, DOWN, 0.5), "more stable updates"),
        Candidate("alternative: more capacity", _moves(capacity, UP, 0.5), "longer completions, more samples"),
        Candidate("alternative: higher learning rate", _moves(lr, UP, 0.5), "faster progress"),
    ]
    return out


FAMILY_RULES = {Family.SUPERVISED: supervised_candidates, Family.RL: rl_candidates, Family.GRPO: grpo_candidates}


def _generic_candidates(ctx: ProposalContext) -> list[Candidate]:
    """Last resort: every single-knob move, largest first."""
    return [Candidate(f"untried direction: {k.name} {'up' if d > 0 else 'down'}", (Move(k.name, d, f),),
                      "a different trajectory from the siblings")
            for f in (1.0, 0.5, 0.25) for k in ctx.surface.knobs for d in (UP, DOWN)]


def to_decision(ctx: ProposalContext, cand: Candidate) -> Decision:
    updates, moved = [], set()
    for m in cand.moves:
        if m.knob in moved:
            continue
        u = knob_update(ctx.surface[m.knob], ctx.parent_recipe[m.knob], m)
        if u is not None:
            updates.append(u)
            moved.add(m.knob)
    audit = [AuditEntry(knob=n, verdict="selected" if n in moved else "deferred",
                        reason=cand.diagnosis if n in moved else "not implicated by the diagnosis")
             for n in ctx.surface.names]
    return Decision(diagnosis=cand.diagnosis, control_audit=audit, updates=updates,
                    expected_outcome=cand.expected, watch_items=list(cand.watch))


class HeuristicManager(Manager):
    name = "heuristic"

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        siblings = [s.recipe for s in ctx.siblings]
        rules = FAMILY_RULES.get(ctx.family, supervised_candidates)
        for cand in rules(ctx) + _generic_candidates(ctx):
            decision = to_decision(ctx, cand)
            if verify(decision, ctx.surface, ctx.parent_recipe, siblings).ok:
                return Proposal(raw=decision.model_dump(), source=self.name)
        # nothing distinct is left: answer the first candidate and let the verifier say why
        return Proposal(raw=to_decision(ctx, rules(ctx)[0]).model_dump(), source=self.name)
