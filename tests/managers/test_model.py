"""The model manager: golden proposals on hand-made evidence (it moves the way the evidence says)."""

import random

import numpy as np
import pytest

from searchmgr.decision import verify
from searchmgr.managers import Observation, manager_class
from searchmgr.managers.model import fit_gp
from searchmgr.tasks import make_task

from manager_contexts import HEALTHY, make_context

TASK = make_task("toy", {"preset": "smoke"})
BASE = TASK.base_recipe()


def evidence_where(better, n=24, seed=0):
    """Scored segments whose utility is ``better(position of lr, position of dropout)`` plus a little noise."""
    rng = random.Random(seed)
    lr, dropout = TASK.surface["lr"], TASK.surface["dropout"]
    out = []
    for _ in range(n):
        recipe = {k.name: k.at(rng.random()) for k in TASK.surface.knobs}
        u = better(lr.normalise(recipe["lr"]), dropout.normalise(recipe["dropout"])) + rng.gauss(0, 0.01)
        out.append(Observation(recipe, rng.choice([1 / 3, 2 / 3, 1.0]), -0.5, u))
    return out


def propose(evidence, kappa=0.0, siblings=(), recipe=None):
    ctx = make_context(hist=HEALTHY, evidence=evidence, parent_utility=-0.5, siblings=siblings, recipe=recipe)
    p = manager_class("model")(kappa=kappa).propose(ctx)
    v = verify(p.raw, ctx.surface, ctx.parent_recipe, [s.recipe for s in ctx.siblings])
    assert v.ok, v.rejection
    return v.recipe, p


@pytest.mark.parametrize("direction", [1, -1])
def test_model_moves_lr_the_way_the_evidence_says(direction):
    recipe, _ = propose(evidence_where(lambda lr, d: direction * lr))
    assert (recipe["lr"] - BASE["lr"]) * direction > 0, (recipe, BASE)


def test_model_moves_dropout_up_when_dropout_helps():
    recipe, _ = propose(evidence_where(lambda lr, d: 2 * d))
    assert recipe["dropout"] > BASE["dropout"]


def test_model_traces_its_evidence():
    _, p = propose(evidence_where(lambda lr, d: lr))
    ev = p.request["evidence"]
    assert ev["points"] == 24 and ev["candidates"] > 10 and ev["chosen"]["ucb_rank"] == 1
    assert "GP over 24 scored segments" in p.raw["diagnosis"]


def test_model_excludes_siblings():
    first, _ = propose(evidence_where(lambda lr, d: lr))
    second, _ = propose(evidence_where(lambda lr, d: lr), siblings=[first])
    assert second != first


def test_model_takes_the_heuristic_prior_without_evidence():
    ctx = make_context(hist=HEALTHY)
    p = manager_class("model")().propose(ctx)
    h = manager_class("heuristic")().propose(ctx)
    assert p.raw == h.raw and p.request["evidence"]["chosen_by"] == "heuristic prior"


def test_gp_interpolates_and_is_uncertain_far_from_data():
    x = np.linspace(0, 1, 8)[:, None]
    fit = fit_gp(x, np.sin(3 * x[:, 0]))
    mu, sd = fit.predict(np.array([[0.5], [3.0]]))
    assert abs(mu[0] - np.sin(1.5)) < 0.05
    assert sd[1] > 5 * sd[0]


def test_diverged_segments_count_as_the_worst():
    ev = evidence_where(lambda lr, d: 0.0, n=12)
    # every high-lr segment diverged: the model must not go up in lr
    rng = random.Random(3)
    for _ in range(12):
        recipe = {k.name: k.at(rng.random()) for k in TASK.surface.knobs}
        recipe["lr"] = TASK.surface["lr"].at(0.7 + 0.3 * rng.random())
        ev.append(Observation(recipe, 1 / 3, -0.5, None))
    recipe, _ = propose(ev)
    assert recipe["lr"] <= BASE["lr"]


def test_model_takes_a_whole_step_when_the_trend_is_steady():
    """Where the evidence rises steadily with lr, the best child the model may make is the whole step limit up:
    the corners of the step region are among its candidates, so it takes exactly that step."""
    lr = TASK.surface["lr"]
    recipe, p = propose(evidence_where(lambda x, d: 3 * x))
    assert recipe["lr"] == pytest.approx(BASE["lr"] * (1 + lr.max_step))
    assert p.request["evidence"]["chosen"]["source"] == "full step"
