"""searchmgr.rl: wrapped vector environments, running statistics and RNGs survive a checkpoint; a PPO segment
split in two ends bit-identical to one."""

import io
import math
import os
import pickle
import random

import gymnasium as gym
import numpy as np
import pytest
import torch

from searchmgr import rl
from searchmgr.tasks import load_task
from searchmgr.tasks.base import Segment

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "cartpole_ppo.py:CartPolePPO")


def _wrapped(env_id="CartPole-v1"):
    env = gym.make(env_id, max_episode_steps=40)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.NormalizeObservation(env)
    env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -5, 5), env.observation_space)
    env = gym.wrappers.NormalizeReward(env, gamma=0.9)
    return gym.wrappers.TransformReward(env, lambda r: np.clip(r, -5, 5))


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False, map_location="cpu")


def test_a_wrapped_vector_env_resumes_mid_episode_with_its_statistics_and_counters():
    envs = gym.vector.SyncVectorEnv([_wrapped for _ in range(3)])
    obs, _ = envs.reset(seed=5)
    for _ in range(25):
        obs, *_ = envs.step(envs.action_space.sample())
    with pytest.raises(Exception):  # why cloudpickle: the wrappers hold lambdas
        pickle.dumps(envs)
    state = _roundtrip(rl.snapshot(envs, obs))
    resumed = rl.restore(state)
    sub, copy = envs.envs[1], resumed.envs.envs[1]
    norm = rl.find_wrapper(sub, gym.wrappers.NormalizeObservation)
    norm2 = rl.find_wrapper(copy, gym.wrappers.NormalizeObservation)
    assert norm.obs_rms.count == norm2.obs_rms.count and np.array_equal(norm.obs_rms.mean, norm2.obs_rms.mean)
    assert rl.find_wrapper(copy, gym.wrappers.TimeLimit)._elapsed_steps == \
        rl.find_wrapper(sub, gym.wrappers.TimeLimit)._elapsed_steps > 0
    assert np.array_equal(resumed.obs, obs)
    actions = np.random.default_rng(0).integers(0, 2, size=(40, 3))  # through episode ends and resets
    for a in actions:
        one, two = envs.step(a), resumed.envs.step(a)
        for x, y in zip(one[:4], two[:4]):
            assert np.array_equal(x, y)
    assert np.array_equal(envs.action_space.sample(), resumed.envs.action_space.sample())  # the spaces' RNGs too


def test_global_rngs_are_restored():
    state = rl.rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(3))
    rl.set_rng_state(_roundtrip(state))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert draws[0] == again[0] and draws[1] == again[1] and torch.equal(draws[2], again[2])


def test_an_env_that_pickles_only_its_arguments_is_refused():
    class Ez(gym.Env, gym.utils.EzPickle):
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Discrete(2)

        def __init__(self):
            gym.utils.EzPickle.__init__(self)

    with pytest.raises(rl.EnvSnapshotError, match="EzPickle"):
        rl.snapshot_env(gym.wrappers.TimeLimit(Ez(), 10))


def _train(task, state, start, steps, horizon):
    return task.train_segment(_roundtrip(state), task.base_recipe(), Segment(start, steps, horizon, 1),
                              lambda s, m: False)


def _same_metrics(a, b):
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_a_ppo_segment_split_in_two_is_bit_identical_to_one():
    task = load_task(EXAMPLE, {"preset": "smoke"})
    root = _roundtrip(task.init(3))
    whole = _train(task, root, 0, 4, 4)
    first = _train(task, root, 0, 2, 4)
    second = _train(task, first.checkpoint, 2, 2, 4)
    assert _same_metrics(whole.metrics, second.metrics)
    for k, v in whole.checkpoint["agent"].items():
        assert torch.equal(v, second.checkpoint["agent"][k]), k
    assert whole.checkpoint["episodes"] == second.checkpoint["episodes"]
    # the control: resuming the second half from fresh environments (the root's) breaks it
    stale = dict(first.checkpoint, rl={**first.checkpoint["rl"], "envs": root["rl"]["envs"]})
    broken = _train(task, stale, 2, 2, 4)
    assert not all(torch.equal(v, broken.checkpoint["agent"][k]) for k, v in whole.checkpoint["agent"].items())


def test_vector_wrappers_resume_too():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    envs = gym.wrappers.vector.NormalizeObservation(envs)
    envs = gym.wrappers.vector.TransformObservation(envs, lambda o: np.clip(o, -5, 5))
    envs = gym.wrappers.vector.NormalizeReward(envs)
    envs.reset(seed=1)
    for _ in range(15):
        envs.step(np.array([0, 1]))
    copy = rl.restore_env(rl.snapshot_env(envs))
    for a in np.random.default_rng(1).integers(0, 2, size=(30, 2)):
        one, two = envs.step(a), copy.step(a)
        for x, y in zip(one[:4], two[:4]):
            assert np.array_equal(x, y)


def test_what_a_plugin_file_defines_is_stored_by_value(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from searchmgr.tasks import PLUGIN_MODULE_PREFIX

    path = tmp_path / "my_env.py"
    path.write_text("import gymnasium as gym\nimport numpy as np\n\n\n"
                    "class Clip(gym.ObservationWrapper):\n"
                    "    def observation(self, obs):\n"
                    "        return np.clip(obs, -0.01, 0.01)\n")
    name = f"{PLUGIN_MODULE_PREFIX}my_env_0123456789ab"  # how plug-in files are imported (their sha in the name)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    env = module.Clip(gym.make("CartPole-v1"))
    env.reset(seed=0)
    data = rl.snapshot_env(env)
    monkeypatch.delitem(sys.modules, name)  # another process, or the file changed: that module name is gone
    obs, *_ = rl.restore_env(data).step(0)
    assert np.abs(obs).max() <= 0.01  # the file's wrapper class came along
