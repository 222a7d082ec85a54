"""TwoLinkReach environment and the PPO arm tasks (smoke preset: the whole file runs in seconds)."""

from __future__ import annotations

import io
import math
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from searchmgr.tasks import make_task
from searchmgr.tasks._reach_env import (
    ENV_ID, L1, L2, TwoLinkReachEnv, arm_clearance, forward_kinematics, segment_distance,
)
from searchmgr.tasks.arm import RECIPES, ArmReckless, ArmScared
from searchmgr.tasks.base import Family, Segment


def fresh_env(**kwargs) -> TwoLinkReachEnv:
    env = gymnasium.make(ENV_ID, **kwargs).unwrapped
    env.reset(seed=0)
    return env


def roundtrip(checkpoint: dict) -> dict:
    """What the store does to a checkpoint: torch.save then torch.load."""
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=False)


def run(task, checkpoint, recipe, start, steps, eval_every=1, on_eval=None):
    seg = Segment(start_step=start, steps=steps, horizon=8, eval_every=eval_every)
    return task.train_segment(roundtrip(checkpoint), recipe, seg, on_eval or (lambda step, m: False))


# ---- environment ----------------------------------------------------------------------

def test_registered_and_passes_env_checker():
    import searchmgr.tasks.arm  # noqa: F401  (registration happens on import)

    assert ENV_ID in gymnasium.registry
    env = gymnasium.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)


def test_reset_starts_extended_and_horizontal_and_is_seeded():
    env = fresh_env()
    obs_a, _ = env.reset(seed=11)
    _, _, fx, fy = forward_kinematics(*env.q)
    assert math.hypot(fx - (L1 + L2), fy) < 0.05  # fully extended, horizontal (small start jitter)
    obs_b, _ = env.reset(seed=11)
    np.testing.assert_array_equal(obs_a, obs_b)
    obs_c, _ = env.reset(seed=12)
    assert not np.array_equal(obs_a, obs_c)


def test_segment_distance():
    assert segment_distance(0.5, 1.0, 0.0, 0.0, 1.0, 0.0) == pytest.approx(1.0)  # above the middle
    assert segment_distance(2.0, 0.0, 0.0, 0.0, 1.0, 0.0) == pytest.approx(1.0)  # beyond the end
    assert segment_distance(-3.0, 4.0, 0.0, 0.0, 1.0, 0.0) == pytest.approx(5.0)  # behind the start
    assert segment_distance(1.0, 1.0, 0.0, 0.0, 0.0, 0.0) == pytest.approx(math.sqrt(2))  # degenerate segment


def test_straight_paths_are_blocked():
    env = TwoLinkReachEnv(jitter=0.0, start_jitter=0.0)
    env.reset(seed=0)
    (tx, ty), (ox, oy), r = env.target, env.obstacle, env.obstacle_radius
    # the straight line from the end effector to the target passes through the obstacle
    assert segment_distance(ox, oy, 1.0, 0.0, tx, ty) < r
    # so does interpolating the joints straight to either inverse-kinematics solution
    d = math.hypot(tx, ty)
    c2 = (d * d - L1 * L1 - L2 * L2) / (2 * L1 * L2)
    for sign in (1, -1):
        q2 = sign * math.acos(c2)
        q1 = math.atan2(ty, tx) - math.atan2(L2 * math.sin(q2), L1 + L2 * math.cos(q2))
        assert min(arm_clearance(q1 * u, q2 * u, ox, oy, r) for u in np.linspace(0, 1, 101)) < 0


def test_collision_of_the_end_effector_terminates_with_penalty():
    env = fresh_env(safety_penalty=2.5, movement_cost=0.0)
    env.configure(q=(0.0, 0.0), obstacle=(1.0, 0.2))  # 0.05 above the end effector's reach
    assert env.clearance() > 0
    _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert terminated and not truncated
    assert info["collision"] and not info["safe_success"]
    assert reward < -2.0  # the safety penalty dominates the small progress


def test_collision_of_the_upper_link_alone_counts():
    env = fresh_env()
    env.configure(q=(0.0, 0.0), obstacle=(0.25, 0.2))
    env.obstacle_radius = 0.18
    assert env.clearance() > 0
    _, _, terminated, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    _, _, fx, fy = forward_kinematics(*env.q)
    assert math.hypot(fx - 0.25, fy - 0.2) > 0.5  # the end effector is far away: the link hit
    assert terminated and info["collision"]


def test_gentle_arrival_is_a_safe_success_and_a_fast_one_is_not():
    env = fresh_env(success_bonus=1.0)
    env.configure(q=(0.3, 0.3), obstacle=(-0.8, -0.5))  # obstacle out of the way
    _, _, fx, fy = forward_kinematics(*env.q)
    env.target = (fx + 0.05, fy)
    _, reward, terminated, truncated, info = env.step(np.array([0.1, 0.0], dtype=np.float32))
    assert terminated and not truncated and info["safe_success"] and not info["collision"]
    assert reward > 0.9  # the success bonus
    env.configure(q=(0.3, 0.3))
    env.target = (fx + 0.02, fy)
    _, _, terminated, _, info = env.step(np.array([0.0, 0.6], dtype=np.float32))  # inside, but too fast
    assert info["distance"] < env.success_radius
    assert not terminated and not info["safe_success"]


def test_step_limit_truncates():
    env = fresh_env(max_steps=5)
    for _ in range(4):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    assert truncated and not terminated


def test_env_state_roundtrip_continues_identically():
    env = fresh_env()
    for _ in range(3):
        env.step(np.array([0.3, -0.5], dtype=np.float32))
    state = env.get_state()
    a = [env.step(np.array([0.2, 0.1], dtype=np.float32))[0] for _ in range(3)] + [env.reset()[0]]
    other = fresh_env()
    other.set_state(state)
    b = [other.step(np.array([0.2, 0.1], dtype=np.float32))[0] for _ in range(3)] + [other.reset()[0]]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---- task -----------------------------------------------------------------------------

METRIC_KEYS = {
    "rl/env_steps", "rl/updates", "rl/safe_success", "rl/collision_rate", "rl/return", "rl/final_dist",
    "rl/episode_length", "rl/episodes", "rl/action_std", "rl/entropy", "rl/action_magnitude",
    "rl/pg_loss", "rl/v_loss", "rl/approx_kl", "rl/clipfrac", "rl/explained_variance",
}
EVAL_KEYS = {"safe_success", "safe_success_det", "collision_rate", "collision_rate_det", "final_dist",
             "final_dist_det", "return", "return_det", "action_magnitude"}


@pytest.fixture(scope="module")
def task():
    return make_task("arm_scared", {"preset": "smoke"})


def test_registry_recipes_and_shared_description():
    scared = make_task("arm_scared", {"preset": "smoke"})
    reckless = make_task("arm_reckless", {"preset": "smoke"})
    base = make_task("arm_reckless", {"preset": "smoke", "recipe": "base"})
    assert isinstance(scared, ArmScared) and isinstance(reckless, ArmReckless)
    assert scared.family is Family.RL and scared.objective.metric == "val/safe_success"
    assert scared.description == reckless.description
    assert "scared" not in scared.description.lower() and "reckless" not in scared.description.lower()
    assert scared.base_recipe()["action_std"] == pytest.approx(0.02)
    assert scared.base_recipe()["actor_lr"] < base.base_recipe()["actor_lr"]
    assert reckless.base_recipe()["action_std"] == pytest.approx(1.6)
    assert base.base_recipe() == RECIPES["base"]
    for t in (scared, reckless, base):
        assert t.surface.check(t.base_recipe()) == t.base_recipe()
    assert scared.surface.names == ["action_std", "ent_coef", "actor_lr", "movement_cost", "safety_penalty"]
    roles = [k.role.value for k in scared.surface.knobs]
    assert roles == ["exploration", "exploration", "optimizer", "objective", "objective"]
    d = scared.search_defaults()
    assert d.segment_steps * d.max_depth <= d.budget_steps


def test_smoke_segment_emits_every_metric(task):
    seen = []
    res = run(task, task.init(0), RECIPES["base"], 0, 2, eval_every=1,
              on_eval=lambda step, m: seen.append((step, m)) or False)
    assert [s for s, _ in seen] == [1, 2]
    mid, last = seen[0][1], seen[1][1]
    expected_val = METRIC_KEYS | {f"val/{k}" for k in EVAL_KEYS}
    assert set(mid) == expected_val
    assert set(last) == expected_val | {f"test/{k}" for k in EVAL_KEYS}
    assert all(math.isfinite(v) for v in last.values())
    assert last["rl/env_steps"] == 2 * task.cfg.batch_size and last["rl/episodes"] > 0
    assert 0.0 <= last["val/safe_success"] <= 1.0 and 0.0 <= last["test/collision_rate"] <= 1.0
    assert res.metrics == last and res.steps_done == 2 and not res.stopped
    assert res.checkpoint["update"] == 2


def test_two_segments_equal_one_long_segment(task):
    recipe = RECIPES["reckless"]
    root = task.init(5)
    long = run(task, root, recipe, 0, 4, eval_every=2)
    first = run(task, root, recipe, 0, 2, eval_every=2)
    second = run(task, first.checkpoint, recipe, 2, 2, eval_every=2)
    assert second.metrics == long.metrics
    a, b = long.checkpoint, second.checkpoint
    for key in ("actor", "critic"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    assert torch.equal(a["rng"], b["rng"])
    assert a["envs"] == b["envs"] and np.array_equal(a["obs"], b["obs"])
    assert a["ep_return"] == b["ep_return"] and a["window"] == b["window"]
    assert a["actor_optim"]["state"][0]["exp_avg"].equal(b["actor_optim"]["state"][0]["exp_avg"])
    # and a different seed gives a different run
    other = run(task, task.init(6), recipe, 0, 2, eval_every=2)
    assert not torch.equal(other.checkpoint["actor"]["log_std"], first.checkpoint["actor"]["log_std"])


def test_knobs_apply_at_the_segment_boundary(task):
    first = run(task, task.init(1), RECIPES["base"], 0, 1)
    learned = first.checkpoint["actor"]["log_std"].exp()
    assert not torch.allclose(learned, torch.full_like(learned, 0.5))  # the std was learned, not pinned
    # a changed action_std resets the log-std; the other knobs reach optimizer and environments
    changed = dict(RECIPES["base"], action_std=0.3, actor_lr=1e-5, safety_penalty=2.0, movement_cost=0.02)
    res = run(task, first.checkpoint, changed, 1, 1)
    assert res.metrics["rl/action_std"] == pytest.approx(0.3, abs=2e-3)  # reset, then one tiny-lr update
    mean_group, log_std_group = res.checkpoint["actor_optim"]["param_groups"]
    assert mean_group["lr"] == pytest.approx(1e-5)
    assert log_std_group["lr"] == pytest.approx(1e-5 * task.cfg.log_std_lr_scale)
    assert all(s["safety_penalty"] == 2.0 and s["movement_cost"] == 0.02 for s in res.checkpoint["envs"])
    assert res.checkpoint["applied"] == changed
    # a held action_std keeps the learned std (no reset): it continues from where it was
    held = run(task, first.checkpoint, RECIPES["base"], 1, 1)
    assert abs(held.metrics["rl/action_std"] - learned.mean().item()) < abs(held.metrics["rl/action_std"] - 0.5)


def test_stop_request_returns_early_without_checkpoint(task):
    res = run(task, task.init(2), RECIPES["base"], 0, 3, on_eval=lambda step, m: True)
    assert res.stopped and res.steps_done == 1 and res.checkpoint is None
    assert "val/safe_success" in res.metrics


def test_evaluation_leaves_training_untouched(task):
    root = task.init(3)
    a = run(task, root, RECIPES["base"], 0, 2, eval_every=1)  # evaluates after each update
    b = run(task, root, RECIPES["base"], 0, 2, eval_every=2)  # evaluates once
    for name in a.checkpoint["actor"]:
        assert torch.equal(a.checkpoint["actor"][name], b.checkpoint["actor"][name])
    assert a.metrics == b.metrics


def test_search_backs_up_safe_success_with_the_final_distance_tiebreak(tmp_path):
    from searchmgr.search import explore
    from searchmgr.store import TreeStore

    explore(["task=arm_scared", "preset=smoke", f"out={tmp_path / 'run'}", "stopper.name=none"])
    objective = ArmScared.objective
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        done = [n for n in store.nodes(store.search()["id"]) if n.depth > 0]
        assert len(done) >= 3
        for n in done:
            last = store.metrics(n.id)[-1][1]
            assert n.utility == pytest.approx(objective.search_utility(last))
            term = n.utility - n.val_score
            assert 0.0 < term < 1e-3 and term == pytest.approx(objective.tiebreak.term(last))
