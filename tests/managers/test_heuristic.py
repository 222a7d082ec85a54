from searchmgr.decision import verify
from searchmgr.managers.heuristic import HeuristicManager

from manager_contexts import DIVERGED, HEALTHY, OVERFIT, make_context


def decide(ctx):
    p = HeuristicManager().propose(ctx)
    v = verify(p.raw, ctx.surface, ctx.parent_recipe, [s.recipe for s in ctx.siblings])
    assert v.ok
    return v.decision, v.recipe


def test_overfitting_raises_regularization():
    ctx = make_context(hist=OVERFIT)
    decision, recipe = decide(ctx)
    assert "overfitting" in decision.diagnosis
    assert recipe["dropout"] > ctx.parent_recipe["dropout"] and recipe["weight_decay"] > ctx.parent_recipe["weight_decay"]


def test_divergence_lowers_the_learning_rate():
    ctx = make_context(hist=DIVERGED)
    decision, recipe = decide(ctx)
    assert "unstable" in decision.diagnosis and recipe["lr"] < ctx.parent_recipe["lr"]


def test_healthy_holds():
    ctx = make_context(hist=HEALTHY)
    decision, recipe = decide(ctx)
    assert decision.updates == [] and recipe == ctx.parent_recipe


def test_second_visit_tries_something_else():
    first = decide(make_context(hist=OVERFIT))[1]
    decision, second = decide(make_context(hist=OVERFIT, siblings=[first]))
    assert second != first


def test_rl_collapsed_exploration_raises_noise():
    hist = [(1000 * (i + 1), {"val/safe_success": 0.0, "rl/action_std": 0.02, "val/collision_rate": 0.0})
            for i in range(4)]
    ctx = make_context(task_name="arm_scared", hist=hist)
    decision, recipe = decide(ctx)
    assert "exploration" in decision.diagnosis
    assert recipe["action_std"] > ctx.parent_recipe["action_std"]
    # the scared recipe's actor lr (1e-4) sits in the lower half of its range: it is raised with the noise
    assert recipe["actor_lr"] > ctx.parent_recipe["actor_lr"]
    fast = dict(ctx.parent_recipe, actor_lr=1e-3)
    decision, recipe = decide(make_context(task_name="arm_scared", hist=hist, recipe=fast))
    assert recipe["action_std"] > fast["action_std"] and recipe["actor_lr"] == fast["actor_lr"]


def test_rl_moderate_noise_is_left_alone_and_large_noise_is_lowered():
    def hist(std, success):
        return [(15 * (i + 1), {"val/safe_success": success, "rl/action_std": std, "val/collision_rate": 0.0})
                for i in range(4)]

    ctx = make_context(task_name="arm_reckless", hist=hist(1.6, 0.3))
    decision, recipe = decide(ctx)
    assert recipe["action_std"] < ctx.parent_recipe["action_std"]
    base = dict(ctx.parent_recipe, action_std=0.5)
    ctx = make_context(task_name="arm_reckless", hist=hist(0.5, 0.3), recipe=base)
    decision, recipe = decide(ctx)
    assert recipe["action_std"] == base["action_std"]  # 0.5 is a healthy noise level: not "too noisy"
