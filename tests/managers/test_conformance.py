"""One conformance suite for every registered manager and stopper."""

import pytest

from searchmgr.decision import verify
from searchmgr.managers import REGISTRY as MANAGERS, Proposal, manager_class
from searchmgr.stoppers import REGISTRY as STOPPERS, StopContext, StopVerdict, stopper_class
from searchmgr.tasks import make_task

from fake_openai_server import conformance_factories
from manager_contexts import DIVERGED, HEALTHY, OVERFIT, make_context

# managers that need more than a bare constructor (an endpoint, a recorded run) register a factory here
MANAGER_FACTORIES = {"heuristic": lambda: manager_class("heuristic")(), "random": lambda: manager_class("random")(),
                     "model": lambda: manager_class("model")(), "model_random": lambda: manager_class("model_random")()}
STOPPER_FACTORIES = {"rule": lambda: stopper_class("rule")(), "none": lambda: stopper_class("none")()}
_llm_managers, _llm_stoppers = conformance_factories()  # LLM side: fake endpoints and a recording replay
MANAGER_FACTORIES.update(_llm_managers)
STOPPER_FACTORIES.update(_llm_stoppers)


def test_every_registered_manager_and_stopper_is_covered():
    assert set(MANAGERS) <= set(MANAGER_FACTORIES), "add a factory for the new manager"
    assert set(STOPPERS) <= set(STOPPER_FACTORIES), "add a factory for the new stopper"


@pytest.mark.parametrize("name", sorted(MANAGER_FACTORIES))
@pytest.mark.parametrize("hist", [OVERFIT, HEALTHY, DIVERGED, []], ids=["overfit", "healthy", "diverged", "empty"])
def test_manager_proposals_pass_the_verifier(name, hist):
    manager = MANAGER_FACTORIES[name]()
    ctx = make_context(hist=hist)
    p = manager.propose(ctx)
    assert isinstance(p, Proposal) and p.source
    assert verify(p.raw, ctx.surface, ctx.parent_recipe).ok


@pytest.mark.parametrize("name", sorted(MANAGER_FACTORIES))
def test_manager_proposes_distinct_children(name):
    manager = MANAGER_FACTORIES[name]()
    siblings = []
    for _ in range(3):
        ctx = make_context(siblings=siblings)
        v = verify(manager.propose(ctx).raw, ctx.surface, ctx.parent_recipe, siblings)
        assert v.ok, v.rejection
        siblings.append(v.recipe)


@pytest.mark.parametrize("name", sorted(MANAGER_FACTORIES))
@pytest.mark.parametrize("task", ["arm_scared", "tinystories_overfit"])
def test_manager_handles_other_families(name, task):
    try:
        ctx = make_context(task_name=task, hist=[])
    except Exception as e:  # noqa: BLE001 - the task module may not be present in this checkout
        pytest.fail(f"task {task} cannot be built: {e}")
    p = MANAGER_FACTORIES[name]().propose(ctx)
    assert verify(p.raw, ctx.surface, ctx.parent_recipe).ok


def stop_context(step, trajectory, best, min_step=40):
    obj = make_task("toy", {"preset": "smoke"}).objective
    return StopContext(5, 2, step, 0, 100, min_step, obj, tuple(trajectory), best, best)


@pytest.mark.parametrize("name", sorted(STOPPER_FACTORIES))
def test_stopper_never_stops_before_min_step(name):
    stopper = STOPPER_FACTORIES[name]()
    hopeless = [(10, 5.0), (20, 5.5), (30, 6.0)]
    v = stopper.should_stop(stop_context(30, hopeless, best=1.0))
    assert isinstance(v, StopVerdict) and not v.stop


@pytest.mark.parametrize("name", sorted(STOPPER_FACTORIES))
def test_stopper_continues_without_a_best(name):
    v = STOPPER_FACTORIES[name]().should_stop(stop_context(60, [(20, 5.0), (40, 5.5), (60, 6.0)], best=None))
    assert not v.stop


def test_rule_stopper_judges_the_trend():
    stopper = STOPPER_FACTORIES["rule"]()
    # far behind and getting worse: stop
    assert stopper.should_stop(stop_context(60, [(40, 2.0), (50, 2.1), (60, 2.2)], best=1.0)).stop
    # behind now but falling fast enough to catch up by step 100: continue
    assert not stopper.should_stop(stop_context(60, [(40, 1.6), (50, 1.4), (60, 1.2)], best=1.0)).stop
    # level with the best: continue
    assert not stopper.should_stop(stop_context(60, [(40, 1.0), (50, 1.0), (60, 1.005)], best=1.0)).stop
    # one evaluation is no trend: however far behind, a segment is not judged on it (a slow starter with one
    # evaluation before its end would otherwise be pruned as if it could not improve at all)
    assert not stopper.should_stop(stop_context(50, [(50, 5.0)], best=1.0)).stop
    assert stopper.should_stop(stop_context(60, [(50, 5.0), (60, 5.0)], best=1.0)).stop


def test_rule_stopper_projects_to_the_reference_step():
    """stopper.reference=horizon: the trend runs to where the reference was reached (the end of the schedule)."""
    stopper, obj = STOPPER_FACTORIES["rule"](), make_task("toy", {"preset": "smoke"}).objective
    slow = [(40, 1.5), (50, 1.45), (60, 1.4)]  # behind, improving slowly: cannot catch up by step 100
    assert stopper.should_stop(stop_context(60, slow, best=1.0)).stop
    at_horizon = StopContext(5, 1, 60, 0, 100, 40, obj, tuple(slow), 1.0, 1.0, reference_step=400)
    assert at_horizon.judged_at == 400 and not stopper.should_stop(at_horizon).stop  # ... but by step 400 it can
    stalled = StopContext(5, 1, 60, 0, 100, 40, obj, ((40, 1.4), (50, 1.4), (60, 1.4)), 1.0, 1.0, reference_step=400)
    assert stopper.should_stop(stalled).stop  # no trend reaches the reference, however far away


def test_rule_stopper_allows_for_evaluation_noise():
    """stopper.noise: a segment behind the best by less than the noise of two evaluations is not pruned."""
    stopper, obj = STOPPER_FACTORIES["rule"](), make_task("toy", {"preset": "smoke"}).objective
    flat = ((40, 1.05), (50, 1.05), (60, 1.05))  # 0.05 behind, no trend
    assert stopper.should_stop(StopContext(5, 2, 60, 0, 100, 40, obj, flat, 1.0, 1.0)).stop
    assert not stopper.should_stop(StopContext(5, 2, 60, 0, 100, 40, obj, flat, 1.0, 1.0, noise=0.04)).stop
    assert stopper.should_stop(StopContext(5, 2, 60, 0, 100, 40, obj, flat, 1.0, 1.0, noise=0.03)).stop


def test_noise_is_pooled_from_second_differences():
    import random

    from searchmgr.telemetry import noise

    rng = random.Random(0)
    noisy = [[0.5 + 0.01 * i + rng.gauss(0, 0.02) for i in range(3)] for _ in range(200)]
    assert 0.015 < noise(noisy) < 0.025  # the trend cancels, the deviation is recovered
    assert noise([[2.0 - 0.1 * i for i in range(10)]]) < 1e-12  # a straight line has no noise
    assert noise([[1.0, 0.9]]) is None  # too few points to tell
