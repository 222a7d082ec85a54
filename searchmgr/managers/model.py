"""``model``: a proposer that learns from the run's own evidence.

Every finished segment of the tree is a data point: the recipe it trained with, how far
into the schedule it was observed (its end step, or where it was pruned, over the
horizon), the state it started from (its parent's score) and the score it reached
(diverged segments count as the worst score seen). A Gaussian process over those points
(RBF kernel, length scale and noise chosen by marginal likelihood, numpy only) predicts
the score of a candidate child; the proposer answers with the candidate of highest
upper confidence bound ``mu + kappa * sigma`` (GP-UCB, Srinivas et al. 2010; the bandit
PB2 runs over a population, here over the tree).

Candidates come from *sources*, all inside the bounded step region of the parent:
the heuristic's rules (their ranked moves), random bounded moves, whole steps (the corners
of the step region, where a trend the model sees puts its best child), and holding the
parent's recipe. Siblings are excluded. With too little evidence the heuristic's own
answer is taken (the prior). The decision's text and the trace's ``evidence`` record
what the model predicted, from how many points, and how it ranked the chosen candidate.

Deterministic given the search seed, the parent and the attempt, so a run replays.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from searchmgr.decision import AuditEntry, Decision, update_between, verify
from searchmgr.managers.base import Manager, Proposal, ProposalContext
from searchmgr.managers.heuristic import FAMILY_RULES, HeuristicManager, supervised_candidates, to_decision
from searchmgr.surface import ActionSurface, Knob, RecipeError, Scale, same_recipe

LENGTH_SCALES = (0.15, 0.3, 0.6, 1.2)
NOISES = (0.01, 0.05, 0.2)  # of the standardised score's variance


@dataclass(frozen=True)
class Candidate:
    """A child recipe and where it came from."""

    recipe: Mapping[str, float]
    source: str  # "heuristic: <diagnosis>", "random move", "hold"


@dataclass(frozen=True)
class Fit:
    """A fitted GP: training inputs, the Cholesky factor and weights, the output scaling."""

    x: np.ndarray
    chol: np.ndarray
    alpha: np.ndarray
    length: float
    noise: float
    y_mean: float
    y_std: float

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the (unstandardised) utility at ``xs``."""
        k = _rbf(xs, self.x, self.length)
        mu = k @ self.alpha
        v = np.linalg.solve(self.chol, k.T)
        var = np.clip(1.0 - np.sum(v * v, axis=0), 1e-12, None)
        return self.y_mean + self.y_std * mu, self.y_std * np.sqrt(var)


def _rbf(a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
    d2 = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
    return np.exp(-0.5 * np.clip(d2, 0, None) / length ** 2)


def fit_gp(x: np.ndarray, y: np.ndarray) -> Fit:
    """A zero-mean GP on the standardised ``y``; length scale and noise by the largest marginal likelihood."""
    y_mean, y_std = float(np.mean(y)), float(np.std(y)) or 1.0
    z = (y - y_mean) / y_std
    best: tuple[float, Fit] | None = None
    for length in LENGTH_SCALES:
        k = _rbf(x, x, length)
        for noise in NOISES:
            chol = np.linalg.cholesky(k + (noise + 1e-8) * np.eye(len(x)))
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
            lml = -0.5 * z @ alpha - np.sum(np.log(np.diag(chol)))
            if best is None or lml > best[0]:
                best = (lml, Fit(x, chol, alpha, length, noise, y_mean, y_std))
    return best[1]


def features(surface: ActionSurface, recipe: Mapping[str, float], progress: float, state: float) -> list[float]:
    """A point of the model: each knob's position on its own scale, the schedule's progress, the start state."""
    return [min(max(k.normalise(recipe[k.name]), 0.0), 1.0) for k in surface.knobs] + [progress, state]


def training_set(ctx: ProposalContext) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Inputs and utilities of the run's evidence, plus the utility range used to scale parent states."""
    obs = [o for o in ctx.evidence if o.utility is not None and math.isfinite(o.utility)]
    if not obs:
        return np.zeros((0, len(ctx.surface.knobs) + 2)), np.zeros(0), 0.0, 1.0
    us = [o.utility for o in obs]
    low, high = min(us), max(us)
    x, y = [], []
    for o in ctx.evidence:
        u = o.utility if o.utility is not None and math.isfinite(o.utility) else low  # diverged: the worst seen
        x.append(features(ctx.surface, o.recipe, o.progress, _state(o.parent_utility, low, high)))
        y.append(u)
    return np.asarray(x, float), np.asarray(y, float), low, high


def _state(utility: float | None, low: float, high: float) -> float:
    if utility is None or not math.isfinite(utility) or high - low < 1e-12:
        return 0.0
    return min(max((utility - low) / (high - low), 0.0), 1.0)


def moved(knob: Knob, value: float, f: float) -> float:
    """``value`` moved by the share ``f`` (-1 to 1) of the knob's step limit, kept in bounds."""
    if knob.scale is Scale.LOG:
        v = value * (1 + knob.max_step) ** f
    else:
        v = value + f * knob.max_step * (knob.high - knob.low)
    v = min(max(v, knob.low), knob.high)
    return float(round(v)) if knob.integer else v


def random_move(surface: ActionSurface, parent: Mapping[str, float], rng: random.Random,
                share: Callable[[random.Random], float] = lambda rng: rng.uniform(-1.0, 1.0)) -> dict:
    """A bounded move: each knob with probability 1/2 (at least one) by a share of its step limit drawn by
    ``share`` (uniform in -1..1; a whole step either way for the corners of the step region)."""
    names = [k.name for k in surface.knobs if rng.random() < 0.5] or [rng.choice(surface.names)]
    out = dict(parent)
    for name in names:
        out[name] = moved(surface[name], parent[name], share(rng))
    return out


def full_steps(surface: ActionSurface, parent: Mapping[str, float], rng: random.Random, n: int) -> list[dict]:
    """Corners of the step region, where a model that sees a trend puts its best child: each knob alone by its
    whole step limit either way, then ``n`` random corners (:func:`random_move` by whole steps)."""
    out = [{**parent, k.name: moved(k, parent[k.name], sign)} for k in surface.knobs for sign in (1, -1)]
    return out + [random_move(surface, parent, rng, lambda rng: rng.choice((1, -1))) for _ in range(n)]


def candidates(ctx: ProposalContext, rng: random.Random, n_random: int) -> list[Candidate]:
    """Distinct admissible children of the parent, none equal to a sibling: rules first, then random moves, then
    full steps."""
    rules = FAMILY_RULES.get(ctx.family, supervised_candidates)
    raw = [Candidate(dict(ctx.parent_recipe), "hold")]
    for cand in rules(ctx):
        v = verify(to_decision(ctx, cand), ctx.surface, ctx.parent_recipe)
        if v.ok:
            raw.append(Candidate(v.recipe, f"heuristic: {cand.diagnosis}"))
    raw += [Candidate(random_move(ctx.surface, ctx.parent_recipe, rng), "random move") for _ in range(n_random)]
    raw += [Candidate(r, "full step") for r in full_steps(ctx.surface, ctx.parent_recipe, rng, n_random // 4)]
    out: list[Candidate] = []
    taken = [s.recipe for s in ctx.siblings]
    for c in raw:
        try:
            recipe = ctx.surface.check(c.recipe)
        except RecipeError:
            continue
        if any(same_recipe(recipe, t) for t in taken):
            continue
        taken.append(recipe)
        out.append(Candidate(recipe, c.source))
    return out


def rank(ctx: ProposalContext, cands: Sequence[Candidate], fit: Fit, low: float, high: float, *,
         kappa: float) -> list[tuple[float, float, float, Candidate]]:
    """``(ucb, mean, sd, candidate)`` best first (ties keep the sources' order: rules before random moves)."""
    horizon = ctx.max_depth * (ctx.end_step - ctx.start_step)
    state = _state(ctx.parent_utility, low, high)
    xs = np.asarray([features(ctx.surface, c.recipe, ctx.end_step / horizon, state) for c in cands], float)
    mu, sd = fit.predict(xs)
    scored = [(float(m + kappa * s), float(m), float(s), i) for i, (m, s) in enumerate(zip(mu, sd))]
    scored.sort(key=lambda t: (-t[0], t[3]))
    return [(u, m, s, cands[i]) for u, m, s, i in scored]


def decision_for(ctx: ProposalContext, cand: Candidate, diagnosis: str, expected: str) -> Decision:
    updates = [u for k in ctx.surface.knobs
               if (u := update_between(k, ctx.parent_recipe[k.name], cand.recipe[k.name])) is not None]
    changed = {u.knob for u in updates}
    audit = [AuditEntry(knob=k, verdict="selected" if k in changed else "deferred",
                        reason=cand.source if k in changed else "held: the model's choice leaves it")
             for k in ctx.surface.names]
    return Decision(diagnosis=diagnosis, control_audit=audit, updates=updates, expected_outcome=expected,
                    watch_items=[ctx.objective.metric])


class ModelManager(Manager):
    """Ranks candidate children by a GP fitted on the run's evidence (see the module docstring)."""

    name = "model"

    def __init__(self, kappa: float = 1.0, min_points: int = 4, n_random: int = 64):
        self.kappa, self.min_points, self.n_random = kappa, min_points, n_random
        self.prior = HeuristicManager()

    @classmethod
    def from_config(cls, config) -> "ModelManager":
        return cls(kappa=config.manager.kappa)

    def ranking(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Ranking | None:
        """The candidate children ranked by the model, best first; None with too little evidence (or no
        distinct candidate). Other managers (an LLM choosing among them) read this too."""
        x, y, low, high = training_set(ctx)
        if len(y) < self.min_points:
            return None
        key = f"{ctx.seed}:{ctx.parent_id}:{len(ctx.siblings)}:{len(feedback)}"
        rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        cands = candidates(ctx, rng, self.n_random)
        if not cands:
            return None
        fit = fit_gp(x, y)
        return Ranking(tuple(Ranked(c, _as_metric(ctx, m), s, u) for u, m, s, c in
                             rank(ctx, cands, fit, low, high, kappa=self.kappa)), len(y), fit, self.kappa)

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        ranking = self.ranking(ctx, feedback)
        if ranking is None:
            p = self.prior.propose(ctx, feedback)
            evidence = {"points": sum(o.utility is not None for o in ctx.evidence), "chosen_by": "heuristic prior",
                        "why": f"fewer than {self.min_points} scored segments to fit a model on, or no distinct "
                               "candidate"}
            return Proposal(raw=p.raw, source=self.name, request={**ctx.to_dict(), "evidence": evidence})
        best = ranking.ranked[0]
        decision = decision_for(ctx, best.candidate, ranking.diagnosis(ctx, 0), ranking.expected(ctx, 0))
        return Proposal(raw=decision.model_dump(), source=self.name,
                        request={**ctx.to_dict(), "evidence": ranking.evidence(0)})


@dataclass(frozen=True)
class Ranked:
    """One candidate with the model's prediction on the metric's own scale and its UCB (on utilities)."""

    candidate: Candidate
    predicted: float
    sd: float
    ucb: float


@dataclass(frozen=True)
class Ranking:
    """The model's ranked candidates and what it was fitted on."""

    ranked: tuple[Ranked, ...]
    points: int
    fit: Fit
    kappa: float

    def diagnosis(self, ctx: ProposalContext, i: int) -> str:
        r = self.ranked[i]
        return (f"model: a GP over {self.points} scored segments predicts {ctx.objective.metric} {r.predicted:.4g} ± "
                f"{r.sd:.2g} for this child (UCB rank {i + 1} of {len(self.ranked)} candidates; source "
                f"{r.candidate.source})")

    def expected(self, ctx: ProposalContext, i: int) -> str:
        r = self.ranked[i]
        return f"{ctx.objective.metric} near {r.predicted:.4g} (±{r.sd:.2g}) at step {ctx.end_step}"

    def evidence(self, i: int) -> dict:
        """What the trace records: the fit, the chosen candidate's prediction and rank, the runners-up."""
        r = self.ranked[i]
        return {"points": self.points, "candidates": len(self.ranked), "kappa": self.kappa,
                "length_scale": self.fit.length, "noise": self.fit.noise,
                "chosen": {"source": r.candidate.source, "predicted": r.predicted, "sd": r.sd, "ucb_rank": i + 1},
                "runners_up": [{"source": o.candidate.source, "predicted": o.predicted, "sd": o.sd}
                               for j, o in enumerate(self.ranked[:4]) if j != i][:3]}


def _as_metric(ctx: ProposalContext, utility: float) -> float:
    """A utility back on the metric's own scale (minimised metrics are negated utilities)."""
    return utility if ctx.objective.direction.value == "maximize" else -utility
