"""``pb2``: population-based bandits (Parker-Holder et al., NeurIPS 2020; Ray Tune's ``PB2``).

PBT (:mod:`searchmgr.policies.pbt`) whose explore step picks the new recipe with a GP bandit instead of a
random perturbation. Every finished segment of the population is one observation: the segment's start (in
segments), the objective's utility before it, its recipe (each knob normalised to [0, 1] on its own scale, log
or linear) and the utility's change per step over the segment. For a first segment, whose parent (the
untrained root) has no score, "before" is the segment's first evaluation.

A Gaussian process with PB2's time-varying kernel,
``k = exp(-|x - x'|^2 / l) * (1 - eps)^(|t - t'| / 2)`` (older observations count less), is fitted on the
standardised changes (``l``, ``eps`` and the noise by maximum marginal likelihood over a small grid). The new
recipe maximises UCB, ``mean + kappa * std`` with ``kappa = sqrt(0.2 log(0.4 n))`` (PB2's schedule, at least
``sqrt(0.2)``), at the donor's time and score, within the knobs' bounds; recipes already chosen for the next
generation lower the variance near them (PB2's batch rule), so one generation does not repeat a choice. With
fewer than :data:`MIN_OBSERVATIONS`, PBT's random perturbation explores instead. Like PBT, everything is a
function of the stored tree and the stored evaluations, so ``--resume`` repeats it.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from searchmgr import tree as T
from searchmgr.objective import Objective
from searchmgr.policies.chains import valid
from searchmgr.policies.pbt import PBTPolicy
from searchmgr.store import Node, NodeStatus
from searchmgr.surface import ActionSurface

MIN_OBSERVATIONS = 2
CANDIDATES = 1024  # random points the acquisition is maximised over (plus every observed recipe)
LENGTHSCALES = (0.05, 0.1, 0.2, 0.5, 1.0)
EPSILONS = (0.0, 0.1, 0.25, 0.5)
NOISES = (1e-3, 1e-2, 0.1, 0.5)

Metrics = Callable[[int], list]  # node id -> [(step, {metric: value})]


@dataclass(frozen=True)
class Observation:
    """One finished segment: when it started (segments), the utility before it, its normalised recipe and
    the utility's change per step over it."""

    t: float
    before: float
    x: tuple[float, ...]
    gain: float


def observations(nodes: Sequence[Node], *, objective: Objective, surface: ActionSurface, segment_steps: int,
                 metrics: Metrics) -> list[Observation]:
    """Every done segment of the population, as a GP observation (segments without a starting score skipped)."""
    index, out = T.by_id(nodes), []
    for n in nodes:
        if n.depth == 0 or n.status is not NodeStatus.DONE or n.val_score is None:
            continue
        parent = index[n.parent_id]
        if parent.val_score is not None:
            start, before = n.start_step, objective.utility(parent.val_score)
        else:  # a first segment: from its first evaluation
            first = [(s, m[objective.metric]) for s, m in metrics(n.id)
                     if objective.metric in m and math.isfinite(m[objective.metric])]
            if not first or first[0][0] >= n.end_step:
                continue
            start, before = first[0][0], objective.utility(first[0][1])
        gain = (objective.utility(n.val_score) - before) / (n.end_step - start)
        out.append(Observation(start / segment_steps, before, tuple(surface_position(surface, n.recipe)), gain))
    return out


def surface_position(surface: ActionSurface, recipe) -> list[float]:
    return [k.normalise(recipe[k.name]) for k in surface.knobs]


def tv_kernel(a: np.ndarray, b: np.ndarray, *, lengthscale: float, epsilon: float) -> np.ndarray:
    """PB2's time-varying squared exponential; column 0 is time, the rest the point."""
    dt = np.abs(a[:, None, 0] - b[None, :, 0])
    d2 = ((a[:, None, 1:] - b[None, :, 1:]) ** 2).sum(-1)
    return np.exp(-d2 / lengthscale) * (1.0 - epsilon) ** (dt / 2)


@dataclass(frozen=True)
class GP:
    """A GP on standardised targets (unit signal variance) with PB2's kernel, factorised once."""

    X: np.ndarray
    y: np.ndarray
    lengthscale: float
    epsilon: float
    noise: float
    chol: np.ndarray
    alpha: np.ndarray

    @classmethod
    def build(cls, X: np.ndarray, y: np.ndarray, lengthscale: float, epsilon: float, noise: float) -> "GP":
        K = tv_kernel(X, X, lengthscale=lengthscale, epsilon=epsilon) + noise * np.eye(len(X))
        chol = np.linalg.cholesky(K)
        return cls(X, y, lengthscale, epsilon, noise, chol, np.linalg.solve(chol.T, np.linalg.solve(chol, y)))

    def log_likelihood(self) -> float:
        return float(-0.5 * self.y @ self.alpha - np.log(np.diag(self.chol)).sum()
                     - 0.5 * len(self.y) * math.log(2 * math.pi))

    def _k(self, Z: np.ndarray) -> np.ndarray:
        return tv_kernel(Z, self.X, lengthscale=self.lengthscale, epsilon=self.epsilon)

    def mean(self, Z: np.ndarray) -> np.ndarray:
        return self._k(Z) @ self.alpha

    def std(self, Z: np.ndarray) -> np.ndarray:
        v = np.linalg.solve(self.chol, self._k(Z).T)
        return np.sqrt(np.maximum(1.0 - (v ** 2).sum(0), 1e-12))

    def with_points(self, P: np.ndarray) -> "GP":
        """The same kernel with ``P`` added as observations (their targets do not matter to the variance)."""
        return GP.build(np.vstack([self.X, P]), np.concatenate([self.y, np.zeros(len(P))]), self.lengthscale,
                        self.epsilon, self.noise)


def fit(X: np.ndarray, y: np.ndarray) -> GP:
    """The kernel settings of the grid with the highest marginal likelihood."""
    fits = [GP.build(X, y, l, e, s) for l, e, s in itertools.product(LENGTHSCALES, EPSILONS, NOISES)]
    return max(fits, key=lambda gp: gp.log_likelihood())


def kappa(n: int) -> float:
    """PB2's UCB weight for ``n`` observations, sqrt(0.2 log(0.4 n)), at least sqrt(0.2)."""
    return math.sqrt(0.2 * max(math.log(0.4 * n), 1.0))


@dataclass(frozen=True)
class Choice:
    """The explore step's ranking: candidate points (normalised recipes), best first, with their prediction."""

    points: np.ndarray
    mean: np.ndarray  # predicted standardised gain
    std: np.ndarray
    n: int


def select(obs: Sequence[Observation], *, t: float, before: float, pending: Sequence[Sequence[float]],
           rng: np.random.Generator, candidates: int = CANDIDATES) -> Choice:
    """Rank candidate recipes by UCB of the predicted gain when training from (``t``, ``before``)."""
    befores = np.array([o.before for o in obs])
    lo, span = befores.min(), (befores.max() - befores.min()) or 1.0
    X = np.array([[o.t, (o.before - lo) / span, *o.x] for o in obs])
    gains = np.array([o.gain for o in obs])
    y = np.clip((gains - gains.mean()) / (gains.std() + 1e-8), -2, 2)
    gp = fit(X, y)
    d = X.shape[1] - 2
    Z = np.vstack([rng.random((candidates, d)), X[:, 2:]])
    fixed = np.array([t, (before - lo) / span])
    full = np.hstack([np.tile(fixed, (len(Z), 1)), Z])
    var_gp = gp.with_points(np.hstack([np.tile(fixed, (len(pending), 1)), np.array(pending)])) if pending else gp
    mean, std = gp.mean(full), var_gp.std(full)
    order = np.argsort(-(mean + kappa(len(obs)) * std), kind="stable")
    return Choice(Z[order], mean[order], std[order], len(obs))


class PB2Policy(PBTPolicy):
    """Synchronous PBT with PB2's GP-bandit explore step."""

    name = "pb2"
    source = "pb2"

    def __init__(self, surface, max_depth, population, quantile, seed, objective, *, segment_steps: int):
        super().__init__(surface, max_depth, population, quantile, seed, objective)
        self.segment_steps = segment_steps
        self.metrics: Metrics = lambda node_id: []

    def resume(self, nodes, metrics):
        self.metrics = metrics  # the first segments' evaluations (the coordinator hands the store's reader)

    def explore(self, nodes: Sequence[Node], donor: Node, rng: random.Random) -> tuple[dict, str]:
        obs = observations([n for n in nodes if n.depth == 0 or n.source == self.source], objective=self.objective,
                           surface=self.surface, segment_steps=self.segment_steps, metrics=self.metrics)
        if len(obs) < MIN_OBSERVATIONS or donor.val_score is None:
            recipe, _ = super().explore(nodes, donor, rng)
            return recipe, f"too few observations ({len(obs)}) for the GP: PBT's perturbation"
        index = T.by_id(nodes)
        nxt = [n for n in self.members(nodes, donor.depth + 1) if n.recipe != index[n.parent_id].recipe]
        choice = select(obs, t=donor.end_step / self.segment_steps, before=self.objective.utility(donor.val_score),
                        pending=[surface_position(self.surface, n.recipe) for n in nxt],
                        rng=np.random.default_rng(rng.getrandbits(32)))
        for point, mean, std in zip(choice.points, choice.mean, choice.std):
            recipe = valid(self.surface, {k.name: k.at(float(u)) for k, u in zip(self.surface.knobs, point)})
            if recipe is not None:
                return recipe, (f"GP-UCB over {choice.n} observed segments: predicted gain {mean:+.2f} ± {std:.2f} "
                                f"(standardised), {len(nxt)} recipe(s) of this generation already chosen")
        recipe, _ = super().explore(nodes, donor, rng)
        return recipe, "no GP candidate satisfies the task's constraint: PBT's perturbation"


def build(config, task) -> PB2Policy:
    population = config.policy.population or config.budget.steps // config.horizon
    return PB2Policy(task.surface, config.max_depth, population, config.policy.quantile, config.seed,
                     task.objective, segment_steps=config.segment_steps)
