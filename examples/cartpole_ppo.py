"""An RL plug-in task: PPO on CartPole-v1 (or Acrobot-v1), discrete actions, in the flat CleanRL ``ppo.py`` style.

    searchmgr explore task=examples/cartpole_ppo.py:CartPolePPO preset=smoke
    searchmgr check task=examples/cartpole_ppo.py:CartPolePPO preset=smoke

**A step is one PPO iteration**: a rollout of ``num_envs x num_steps`` environment steps
(512 in the default preset) followed by ``update_epochs`` passes of clipped updates over
it. Segments therefore start and end between iterations; ``rl/env_steps`` counts the
environment steps. The search moves the learning rate (annealed linearly to zero over
the whole schedule, as CleanRL does over its run), the entropy bonus and the clipping
range.

Exact resume comes from :mod:`searchmgr.rl`: the checkpoint holds the vector
environment with its wrappers (running observation and reward statistics, episode
statistics, time-limit counters, the environments' RNGs; the clipping lambdas too), the
pending observation and done flags, and the python/numpy/torch RNGs that sample actions
and shuffle minibatches. Evaluation runs greedy episodes on fixed seeds in its own
environments, with the training observation statistics frozen, so it never touches the
training state. Copy this file to start your own RL task: docs/tasks.md is the
contract, and ``check_task`` tests it.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from gymnasium.vector import AutoresetMode
from pydantic import Field
from torch.distributions.categorical import Categorical

from searchmgr import rl
from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale
from searchmgr.tasks import Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task
from searchmgr.tasks.device import DeviceOptions

VAL_SEED, TEST_SEED = 10_000, 20_000  # evaluation episodes reset with VAL_SEED + i (never a training seed)
TRAIN_SEED = 1_000_000  # the training environments reset once with TRAIN_SEED + seed


@dataclass(frozen=True)
class PPOConfig:
    """Fixed PPO settings of a preset (the knobs are lr, ent_coef and clip_coef)."""

    num_envs: int = 4
    """parallel environments in the SyncVectorEnv"""
    num_steps: int = 128
    """steps per environment in one rollout (one PPO iteration = num_envs * num_steps env steps)"""
    update_epochs: int = 4
    """passes over the rollout in one iteration"""
    num_minibatches: int = 4
    """minibatches per pass"""
    gamma: float = 0.99
    """discount factor (the reward normaliser uses 0.99 too)"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip"""
    hidden: int = 64
    """width of the two hidden layers of actor and critic"""
    eval_episodes: int = 8
    """greedy episodes per evaluation (fixed seeds)"""
    eval_max_steps: int = 500
    """evaluation episodes end (truncated) after this many steps"""
    episode_window: int = 20
    """finished training episodes that train/episode_return averages over"""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps


PRESETS = {
    "default": PPOConfig(),
    "smoke": PPOConfig(num_envs=2, num_steps=32, update_epochs=4, num_minibatches=2, hidden=16, eval_episodes=2,
                       eval_max_steps=50),
}


class CartPoleOptions(DeviceOptions):
    preset: Literal["default", "smoke"] = Field("default", description="default, or smoke (tiny budgets for tests)")
    env_id: Literal["CartPole-v1", "Acrobot-v1"] = Field("CartPole-v1", description="the discrete-action environment")


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, n_actions), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> (B, 1)
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        logits = self.actor(x)  # (B, n_actions)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()  # the global torch RNG (restored by searchmgr.rl)
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def make_env(env_id: str, train: bool, max_steps: int | None = None):
    """One environment (CleanRL's thunk); training adds episode statistics and normalised, clipped rewards."""
    def thunk() -> gym.Env:
        env = gym.make(env_id, max_episode_steps=max_steps)
        if train:
            env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.NormalizeObservation(env)
        env = gym.wrappers.TransformObservation(env, lambda obs: np.clip(obs, -10, 10), env.observation_space)
        if train:
            env = gym.wrappers.NormalizeReward(env, gamma=0.99)
            env = gym.wrappers.TransformReward(env, lambda reward: np.clip(reward, -10, 10))
        return env
    return thunk


def make_envs(env_id: str, n: int, train: bool, max_steps: int | None = None) -> gym.vector.SyncVectorEnv:
    """n environments that reset as their episodes end (the final observation is not needed: no bootstrap)."""
    return gym.vector.SyncVectorEnv([make_env(env_id, train, max_steps) for _ in range(n)],
                                    autoreset_mode=AutoresetMode.SAME_STEP)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        next_done: torch.Tensor, cfg: PPOConfig) -> torch.Tensor:
    """Generalised advantage estimates, (num_steps, num_envs); ``dones[t]``: an episode ended before step t."""
    advantages = torch.zeros_like(rewards)
    lastgaelam = 0
    for t in reversed(range(cfg.num_steps)):
        nextnonterminal = 1.0 - (next_done if t == cfg.num_steps - 1 else dones[t + 1])
        nextvalues = next_value if t == cfg.num_steps - 1 else values[t + 1]
        delta = rewards[t] + cfg.gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + cfg.gamma * cfg.gae_lambda * nextnonterminal * lastgaelam
    return advantages


def ppo_update(agent: Agent, optimizer: torch.optim.Optimizer, b: dict[str, torch.Tensor], recipe: Recipe,
               cfg: PPOConfig) -> dict[str, float]:
    """``update_epochs`` passes of clipped updates over shuffled minibatches of the rollout ``b`` (flat
    tensors); returns the last minibatch's losses and the iteration's clip fraction as train/ metrics."""
    clip, minibatch_size = recipe["clip_coef"], cfg.batch_size // cfg.num_minibatches
    clipfracs = []
    for epoch in range(cfg.update_epochs):
        b_inds = torch.randperm(cfg.batch_size, device=b["obs"].device)
        for start in range(0, cfg.batch_size, minibatch_size):
            mb = b_inds[start:start + minibatch_size]
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(b["obs"][mb], b["actions"][mb])
            logratio = newlogprob - b["logprobs"][mb]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()
                clipfracs.append(((ratio - 1.0).abs() > clip).float().mean().item())
            mb_advantages = b["advantages"][mb]
            mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
            pg_loss = torch.max(-mb_advantages * ratio, -mb_advantages * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
            newvalue = newvalue.view(-1)
            v_loss_unclipped = (newvalue - b["returns"][mb]) ** 2
            v_clipped = b["values"][mb] + torch.clamp(newvalue - b["values"][mb], -clip, clip)
            v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - b["returns"][mb]) ** 2).mean()
            entropy_loss = entropy.mean()
            loss = pg_loss - recipe["ent_coef"] * entropy_loss + v_loss * cfg.vf_coef
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()
    stats = {"train/pg_loss": pg_loss.item(), "train/v_loss": v_loss.item(), "train/entropy": entropy_loss.item(),
             "train/approx_kl": approx_kl.item(), "train/clipfrac": float(np.mean(clipfracs))}
    y_pred, y_true = b["values"].cpu().numpy(), b["returns"].cpu().numpy()
    if np.var(y_true) > 0:
        stats["train/explained_variance"] = float(1 - np.var(y_true - y_pred) / np.var(y_true))
    return stats


class CartPolePPO(Task):
    name = "cartpole_ppo"
    family = Family.RL
    objective = Objective("val/return", Direction.MAXIMIZE, "test/return")
    description = ("PPO (CleanRL's discrete-action ppo.py) balances a pole on a cart (gymnasium CartPole-v1, or "
                   "swings up Acrobot-v1), with separate actor and critic MLPs, normalised observations and "
                   "rewards. One step is one PPO iteration: a rollout of num_envs x num_steps environment steps "
                   "followed by clipped updates. The goal is the highest greedy-policy episode return on held-out "
                   "episode seeds at the end of the schedule.")
    Options = CartPoleOptions
    presets = ("default", "smoke")

    def __init__(self, options: CartPoleOptions | None = None):
        super().__init__(options)
        self.cfg = PRESETS[self.options.preset]
        self.device = torch.device(self.options.device)
        probe = gym.make(self.options.env_id)
        self.obs_dim, self.n_actions = probe.observation_space.shape[0], int(probe.action_space.n)
        self.eval_envs = make_envs(self.options.env_id, self.cfg.eval_episodes, train=False,
                                   max_steps=self.cfg.eval_max_steps)

    @property
    def surface(self) -> ActionSurface:
        return ActionSurface((
            Knob("lr", 3e-5, 3e-3, Scale.LOG, 1.0, Role.OPTIMIZER, "Adam learning rate, annealed linearly to 0 over "
                 "the schedule"),
            Knob("ent_coef", 0.0, 0.05, Scale.LINEAR, 0.2, Role.EXPLORATION, "entropy bonus weight in the loss"),
            Knob("clip_coef", 0.02, 0.4, Scale.LINEAR, 0.25, Role.REGULARIZATION, "PPO clipping range of the "
                 "probability ratio and of the value change (a trust region)"),
        ))

    def base_recipe(self) -> Recipe:
        return {"lr": 2.5e-4, "ent_coef": 0.01, "clip_coef": 0.2}

    def search_defaults(self) -> SearchDefaults:
        if self.options.preset == "smoke":
            return SearchDefaults(segment_steps=2, max_depth=2, budget_steps=8, eval_every=1)
        # horizon 100 iterations = 51,200 environment steps
        return SearchDefaults(segment_steps=25, max_depth=4, budget_steps=1000, eval_every=5)

    def info(self) -> dict:
        return {"env": self.options.env_id, "env_steps_per_step": self.cfg.batch_size, "ppo": asdict(self.cfg),
                "step_unit": "one PPO iteration", "device": str(self.device)}

    def init(self, seed: int) -> dict:
        torch.manual_seed(seed)
        np.random.seed(seed)
        agent = Agent(self.obs_dim, self.n_actions, self.cfg.hidden)
        optimizer = torch.optim.Adam(agent.parameters(), lr=0.0, eps=1e-5)
        envs = make_envs(self.options.env_id, self.cfg.num_envs, train=True)
        next_obs, _ = envs.reset(seed=TRAIN_SEED + seed)
        return {"agent": agent.state_dict(), "optim": optimizer.state_dict(), "iteration": 0, "env_steps": 0,
                "rl": rl.snapshot(envs, next_obs, done=np.zeros(self.cfg.num_envs), device=self.device),
                "episodes": []}

    @torch.no_grad()
    def evaluate(self, agent: Agent, train_envs: gym.vector.VectorEnv, seed: int) -> dict[str, float]:
        """Greedy episodes on fixed seeds, one per evaluation environment, under the observation statistics of
        the first training environment (frozen)."""
        envs = self.eval_envs
        stats = rl.find_wrapper(train_envs.envs[0], gym.wrappers.NormalizeObservation).obs_rms
        for env in envs.envs:
            norm = rl.find_wrapper(env, gym.wrappers.NormalizeObservation)
            norm.obs_rms, norm.update_running_mean = copy.deepcopy(stats), False
        n = envs.num_envs
        obs, _ = envs.reset(seed=[seed + i for i in range(n)])
        alive, ret, length = np.ones(n, bool), np.zeros(n), np.zeros(n)
        while alive.any():
            logits = agent.actor(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
            obs, reward, term, trunc, _ = envs.step(logits.argmax(-1).cpu().numpy())
            ret += reward * alive
            length += alive
            alive &= ~(term | trunc)
        return {"return": float(ret.mean()), "length": float(length.mean())}

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        """Greedy episodes on fresh seeds (drawn with ``seed``) from a finished segment's checkpoint, for
        re-evaluating the best schedules of a noisy search; touches no RNG and no training state."""
        agent = Agent(self.obs_dim, self.n_actions, self.cfg.hidden).to(self.device)
        agent.load_state_dict(checkpoint["agent"])
        train_envs = rl.restore_env(checkpoint["rl"]["envs"])  # for its observation statistics
        fresh = VAL_SEED + 100_000 * (seed + 1)  # never the validation, test or training seeds
        return {f"val/{k}": v for k, v in self.evaluate(agent, train_envs, fresh).items()}

    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        cfg, device = self.cfg, self.device
        # resume: the model first (building it draws from the RNG), then environments, pending obs and RNGs
        agent = Agent(self.obs_dim, self.n_actions, cfg.hidden).to(device)
        agent.load_state_dict(checkpoint["agent"])
        optimizer = torch.optim.Adam(agent.parameters(), lr=0.0, eps=1e-5)
        optimizer.load_state_dict(checkpoint["optim"])
        envs, next_obs, next_done = rl.restore(checkpoint["rl"])
        next_obs = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
        next_done = torch.as_tensor(next_done, dtype=torch.float32, device=device)
        iteration, env_steps = checkpoint["iteration"], checkpoint["env_steps"]
        episodes = deque(checkpoint["episodes"], maxlen=cfg.episode_window)

        obs = torch.zeros((cfg.num_steps, cfg.num_envs, self.obs_dim), device=device)
        actions = torch.zeros((cfg.num_steps, cfg.num_envs), device=device)
        logprobs, rewards, dones, values = (torch.zeros((cfg.num_steps, cfg.num_envs), device=device)
                                            for _ in range(4))
        metrics: dict[str, float] = {}
        for i in range(1, segment.steps + 1):
            # anneal the learning rate linearly over the whole schedule (the recipe's lr is its peak)
            lr_now = recipe["lr"] * (1.0 - iteration / segment.horizon)
            optimizer.param_groups[0]["lr"] = lr_now

            # rollout
            for step in range(cfg.num_steps):
                env_steps += cfg.num_envs
                obs[step], dones[step] = next_obs, next_done
                with torch.no_grad():
                    action, logprob, _, value = agent.get_action_and_value(next_obs)
                    values[step] = value.flatten()
                actions[step], logprobs[step] = action, logprob
                next_obs_np, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
                next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
                next_done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32,
                                            device=device)
                if "final_info" in infos and "episode" in infos["final_info"]:  # episodes that ended here
                    done_info = infos["final_info"]
                    episodes.extend(done_info["episode"]["r"][done_info["_episode"]].tolist())

            # bootstrap value, GAE; then optimize the policy and value network
            with torch.no_grad():
                advantages = gae(rewards, values, dones, agent.get_value(next_obs).reshape(1, -1), next_done, cfg)
            batch = {"obs": obs.reshape((-1, self.obs_dim)), "actions": actions.reshape(-1).long(),
                     "logprobs": logprobs.reshape(-1), "advantages": advantages.reshape(-1),
                     "returns": (advantages + values).reshape(-1), "values": values.reshape(-1)}
            stats = ppo_update(agent, optimizer, batch, recipe, cfg)
            iteration += 1

            # evaluate
            last = i == segment.steps
            if i % segment.eval_every == 0 or last:
                metrics = {"train/lr": lr_now, **stats, "rl/env_steps": float(env_steps),
                           "rl/iterations": float(iteration)}
                if episodes:
                    metrics["train/episode_return"] = float(np.mean(episodes))
                metrics.update({f"val/{k}": v for k, v in self.evaluate(agent, envs, VAL_SEED).items()})
                if last:
                    metrics.update({f"test/{k}": v for k, v in self.evaluate(agent, envs, TEST_SEED).items()})
                if on_eval(segment.start_step + i, metrics) and not last:
                    return SegmentResult(None, i, metrics, stopped=True)

        ckpt = {"agent": agent.state_dict(), "optim": optimizer.state_dict(), "iteration": iteration,
                "env_steps": env_steps, "rl": rl.snapshot(envs, next_obs, done=next_done, device=device),
                "episodes": list(episodes)}
        return SegmentResult(ckpt, segment.steps, metrics)
