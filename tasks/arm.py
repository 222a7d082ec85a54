"""arm_scared / arm_reckless: PPO on a two-link arm that must swing around an obstacle.

One PPO implementation (CleanRL style: rollout, GAE, clipped update, all in
:meth:`ArmTask.train_segment`), one environment (``searchmgr/TwoLinkReach-v0``,
see ``_reach_env.py``) and one problem description; the two registered tasks
differ only in their initial recipe:

- ``arm_scared``: action noise std 0.02 and a low actor learning rate (1e-4). The
  policy barely explores and barely moves: safe success stays near zero.
- ``arm_reckless``: action noise std 1.6 (actor learning rate 1e-3). Actions are
  mostly clipped random moves: the deterministic policy learns the route, but the
  noisy one rarely arrives gently and sometimes collides, so safe success is
  noisy and slow.
- ``RECIPES["base"]`` (std 0.5, actor learning rate 1e-3) learns the task. It is not
  a registered task; pick it with the option ``recipe=base`` (for benchmarks).

The search objective is ``val/safe_success``: the safe-success rate of the policy
acting with its own action noise (stochastic rollouts), on a fixed set of
validation episode seeds; ``test/`` uses a disjoint set. The deterministic
policy's rate rides along as ``val/safe_success_det``. Segments that tie on it
(every early scared segment sits at exactly 0) are told apart by their mean final
distance to the target (``val/final_dist``), a tie-break too small to reorder
different success rates.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

import gymnasium
from searchmgr.surface import ActionSurface, Knob, Recipe, Role, Scale
from searchmgr.tasks._reach_env import ENV_ID, OBS_DIM, TwoLinkReachEnv
from searchmgr.tasks.base import (
    Direction, Family, Objective, OnEval, Segment, SegmentResult, SearchDefaults, Task, TaskOptions, TieBreak,
)

ACT_DIM = 2
STD_LOW, STD_HIGH = 0.01, 2.0  # bounds of the action_std knob; the learnable log-std is clamped to them
VAL_SEEDS = range(10_000, 10_000 + 1000)  # evaluation episode seeds (first eval_episodes of each range are used)
TEST_SEEDS = range(20_000, 20_000 + 1000)  # disjoint from VAL_SEEDS
TRAIN_SEED_BASE = 1_000_000  # training environments reset with TRAIN_SEED_BASE + 1000 * seed + i: never an eval seed
VAL_NOISE_SEED, TEST_NOISE_SEED = 777, 888  # action-noise generators of the stochastic evaluations

RECIPES: dict[str, Recipe] = {
    "scared": {"action_std": 0.02, "ent_coef": 0.0, "actor_lr": 1e-4, "movement_cost": 0.005, "safety_penalty": 1.0},
    "reckless": {"action_std": 1.6, "ent_coef": 0.0, "actor_lr": 1e-3, "movement_cost": 0.005, "safety_penalty": 1.0},
    "base": {"action_std": 0.5, "ent_coef": 0.0, "actor_lr": 1e-3, "movement_cost": 0.005, "safety_penalty": 1.0},
}


class PPOConfig(BaseModel):
    """Fixed PPO settings of a preset (not knobs: the search never changes them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_envs: int = Field(16, ge=1, description="parallel training environments")
    rollout_steps: int = Field(128, ge=1, description="steps per environment in one PPO rollout")
    update_epochs: int = Field(10, ge=1, description="passes over the rollout in one PPO update")
    num_minibatches: int = Field(4, ge=1, description="minibatches per pass")
    gamma: float = Field(0.99, gt=0, le=1, description="discount factor")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    clip_coef: float = Field(0.2, gt=0, description="PPO ratio clipping range")
    max_grad_norm: float = Field(0.5, gt=0, description="gradient-norm clip for actor and critic")
    critic_lr: float = Field(1e-3, gt=0, description="learning rate of the value network (Adam)")
    log_std_lr_scale: float = Field(0.1, ge=0, description="the log-std learns at actor_lr times this (slower than the mean)")
    hidden: int = Field(64, ge=4, description="width of the two hidden layers of actor and critic")
    eval_episodes: int = Field(32, ge=1, le=1000, description="episodes per evaluation (each of stochastic and deterministic)")
    train_window: int = Field(100, ge=1, description="completed training episodes the rl/ episode statistics average over")
    max_steps: int = Field(80, ge=10, description="environment step limit (truncation)")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_steps


PRESETS: dict[str, PPOConfig] = {
    "default": PPOConfig(),
    "smoke": PPOConfig(num_envs=4, rollout_steps=48, update_epochs=2, num_minibatches=2, hidden=16,
                       eval_episodes=4, train_window=20, max_steps=40),
}


class ArmOptions(TaskOptions):
    preset: str = Field("default", description="sizes and budgets: 'default' (real runs) or 'smoke' (tests)")
    recipe: Literal["task", "base"] = Field(
        "task", description="initial recipe: the task's own (scared/reckless) or the healthy 'base' one (benchmarks)")


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Actor(nn.Module):
    """Gaussian policy: an MLP for the mean and a learnable, state-independent log-std."""

    def __init__(self, hidden: int):
        super().__init__()
        self.mean = nn.Sequential(
            layer_init(nn.Linear(OBS_DIM, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, ACT_DIM), std=0.01),
        )
        self.log_std = nn.Parameter(torch.zeros(1, ACT_DIM))

    def forward(self, obs: torch.Tensor) -> torch.distributions.Normal:  # (B, OBS_DIM) -> Normal over (B, ACT_DIM)
        mean = self.mean(obs)  # (B, ACT_DIM)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))


def actor_optimizer(actor: Actor) -> torch.optim.Adam:
    """Adam with two groups, the mean MLP and the log-std; their learning rates are set per segment."""
    return torch.optim.Adam([{"params": actor.mean.parameters()}, {"params": [actor.log_std]}], lr=0.0, eps=1e-5)


def critic_net(hidden: int) -> nn.Module:
    return nn.Sequential(
        layer_init(nn.Linear(OBS_DIM, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, 1), std=1.0),
    )


def make_env(max_steps: int, recipe: Recipe | None = None) -> TwoLinkReachEnv:
    """A TwoLinkReach environment built through the gymnasium registry (unwrapped, for exact state access)."""
    kwargs = {"max_steps": max_steps}
    if recipe is not None:
        kwargs.update(movement_cost=recipe["movement_cost"], safety_penalty=recipe["safety_penalty"])
    return gymnasium.make(ENV_ID, disable_env_checker=True, **kwargs).unwrapped


class ArmTask(Task):
    """PPO on ``searchmgr/TwoLinkReach-v0`` (shared by ``arm_scared`` and ``arm_reckless``).

    Steps. One segment step is one PPO update: a rollout of ``num_envs x
    rollout_steps`` environment steps (2,048 in the default preset) followed by
    ``update_epochs`` clipped passes over it. ``rl/env_steps`` reports the
    environment steps. Recipe changes therefore only ever happen between PPO
    updates, never inside a rollout or an update.

    Knobs apply at the segment start: ``actor_lr`` sets the actor optimizer's
    learning rate, ``ent_coef`` the entropy bonus, ``movement_cost`` and
    ``safety_penalty`` the reward coefficients of every training (and evaluation)
    environment. ``action_std`` resets the learnable log-std to ``log(value)``
    when its value differs from the one last applied (stored in the checkpoint);
    a held value leaves the learned std alone, so a chain of all-hold segments
    trains exactly like one long run. The log-std learns ten times slower than the
    mean (``log_std_lr_scale``), so the noise level stays close to what the knob
    set for a schedule's worth of segments, and it is clamped to the knob's bounds
    after every optimizer step.

    Checkpoint (a plain dict): actor and critic weights, both Adam states, the
    update and environment-step counters, the training torch.Generator (action
    sampling and minibatch order), the exact state of every training environment
    (joint angles, step count, jittered geometry, numpy RNG) with the current
    observations and running episode returns, the rolling window of finished
    training episodes, and the recipe last applied. Episodes in flight continue
    across segment boundaries; nothing is re-seeded, so resuming is exact. There
    are no normalisation statistics (observations are bounded, advantages are
    normalised per minibatch). Evaluations use their own environments, episode
    seeds and noise generators and never touch the training state.

    Telemetry, at every evaluation:

    - ``rl/``: training-time statistics. ``env_steps``, ``updates``; rolling means
      over the last ``train_window`` finished training episodes (``episodes`` says
      how many): ``safe_success``, ``collision_rate``, ``return``, ``final_dist``,
      ``episode_length``; the policy's ``action_std`` (mean over joints of the
      learned std) and ``entropy`` (of the Gaussian, nats); ``action_magnitude``
      (mean L2 norm of the executed, clipped actions of the last rollout); and the
      last update's ``pg_loss``, ``v_loss``, ``approx_kl``, ``clipfrac``,
      ``explained_variance``. Keys whose value is undefined (no finished training
      episode yet, a constant return batch) are left out rather than sent as NaN.
    - ``val/`` (every evaluation) and ``test/`` (the last evaluation of a segment):
      ``eval_episodes`` episodes each, with the policy's own noise (``safe_success``
      — the objective —, ``collision_rate``, ``final_dist``, ``return``,
      ``action_magnitude``) and with the deterministic mean action (the same names
      with ``_det``, except the magnitude).
    """

    family = Family.RL
    # ties (every early segment at 0% safe success) go to the smaller mean final distance; the weight stays
    # below the success rate's resolution (1 / eval_episodes >= 1e-3), so it never reorders different rates
    objective = Objective("val/safe_success", Direction.MAXIMIZE, "test/safe_success",
                          TieBreak("val/final_dist", Direction.MINIMIZE, 1e-3))
    description = (
        "Proximal policy optimisation (PPO) trains a planar two-link arm to reach a target. The policy is "
        "Gaussian: an MLP gives the mean joint velocities and a learnable, state-independent log-std the "
        "action noise; a separate MLP estimates values. The arm starts fully extended and horizontal; a "
        "circular obstacle lies on the straight path between its end effector and the target, so the arm "
        "must swing around it through joint space. An episode ends on reaching the target gently (inside its "
        "radius with both joint speeds at most a quarter of the maximum: a safe success), on touching the "
        "obstacle with either link (collision), or at the step limit. Reward per step: progress "
        "toward the target minus movement_cost * |action|^2, minus safety_penalty on a collision, plus a fixed "
        "bonus on success. One segment step is one PPO update (a rollout of num_envs x rollout_steps "
        "environment steps, then clipped updates). The goal is the highest safe-success rate of the policy "
        "acting with its own action noise on held-out evaluation episodes at the end of the schedule."
    )
    Options = ArmOptions
    presets = ("default", "smoke")
    start: str  # key into RECIPES for the task's own initial recipe

    def __init__(self, options: ArmOptions | None = None):
        super().__init__(options)
        self.cfg = PRESETS[self.options.preset]
        self._surface = ActionSurface((
            Knob("action_std", STD_LOW, STD_HIGH, Scale.LOG, 2.0, Role.EXPLORATION,
                 "std of the Gaussian action noise; a change resets the learnable log-std to it at the segment start",
                 caution="too small: no exploration, nothing is learned; too large: random clipped actions, collisions"),
            Knob("ent_coef", 0.0, 0.05, Scale.LINEAR, 0.2, Role.EXPLORATION,
                 "entropy bonus weight in the actor loss; a positive value pushes the learnable std up"),
            Knob("actor_lr", 1e-5, 3e-3, Scale.LOG, 1.0, Role.OPTIMIZER,
                 "Adam learning rate of the policy mean (the learnable log-std moves at a tenth of it)"),
            Knob("movement_cost", 0.0, 0.05, Scale.LINEAR, 0.2, Role.OBJECTIVE,
                 "reward penalty per step on |action|^2; higher favours small, deliberate joint motions"),
            Knob("safety_penalty", 0.0, 5.0, Scale.LINEAR, 0.2, Role.OBJECTIVE,
                 "reward penalty when the arm touches the obstacle (the episode ends); higher favours caution"),
        ))
        self._eval_envs = [make_env(self.cfg.max_steps) for _ in range(self.cfg.eval_episodes)]

    @property
    def surface(self) -> ActionSurface:
        return self._surface

    def base_recipe(self) -> Recipe:
        return dict(RECIPES["base" if self.options.recipe == "base" else self.start])

    def search_defaults(self) -> SearchDefaults:
        if self.options.preset == "smoke":
            return SearchDefaults(segment_steps=2, max_depth=2, budget_steps=8, eval_every=1)
        # horizon 120 updates = 245,760 environment steps (about 2 minutes on a 2-core CPU)
        return SearchDefaults(segment_steps=15, max_depth=8, budget_steps=360, eval_every=5)

    def info(self) -> dict:
        return {"env": ENV_ID, "env_steps_per_update": self.cfg.batch_size, "ppo": self.cfg.model_dump(),
                "initial_recipe": "base" if self.options.recipe == "base" else self.start}

    def init(self, seed: int) -> dict:
        cfg = self.cfg
        torch.manual_seed(seed)
        actor, critic = Actor(cfg.hidden), critic_net(cfg.hidden)
        actor_opt = actor_optimizer(actor)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=1e-5)
        envs = [make_env(cfg.max_steps) for _ in range(cfg.num_envs)]
        obs = np.stack([env.reset(seed=TRAIN_SEED_BASE + 1000 * seed + i)[0] for i, env in enumerate(envs)])  # (N, OBS_DIM)
        return {
            "actor": actor.state_dict(), "critic": critic.state_dict(),
            "actor_optim": actor_opt.state_dict(), "critic_optim": critic_opt.state_dict(),
            "update": 0, "env_steps": 0,
            "rng": torch.Generator().manual_seed(seed).get_state(),
            "envs": [env.get_state() for env in envs], "obs": obs,
            "ep_return": [0.0] * cfg.num_envs, "ep_length": [0] * cfg.num_envs,
            "window": [], "applied": None, "config": cfg.model_dump(),
        }

    # ---- evaluation ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, actor: Actor, seeds: range, recipe: Recipe, deterministic: bool, noise_seed: int) -> dict[str, float]:
        """Run one episode per seed (all in lockstep) and return rates and means over the episodes."""
        envs = self._eval_envs
        gen = torch.Generator().manual_seed(noise_seed)
        obs = []
        for env, s in zip(envs, seeds):
            env.movement_cost, env.safety_penalty = recipe["movement_cost"], recipe["safety_penalty"]
            obs.append(env.reset(seed=s)[0])
        n = len(envs)
        obs = np.stack(obs)  # (n, OBS_DIM)
        alive = np.ones(n, dtype=bool)
        success, collision = np.zeros(n), np.zeros(n)
        final_dist, ret = np.zeros(n), np.zeros(n)
        mag_sum, mag_count = 0.0, 0
        while alive.any():
            dist = actor(torch.from_numpy(obs))
            action = dist.mean if deterministic else dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)
            action = action.clamp(-1.0, 1.0).numpy()  # (n, ACT_DIM)
            mag_sum += float(np.linalg.norm(action[alive], axis=1).sum())
            mag_count += int(alive.sum())
            for i in np.flatnonzero(alive):
                o, r, term, trunc, info = envs[i].step(action[i])
                obs[i] = o
                ret[i] += r
                if term or trunc:
                    alive[i] = False
                    success[i], collision[i], final_dist[i] = info["safe_success"], info["collision"], info["distance"]
        return {"safe_success": success.mean(), "collision_rate": collision.mean(), "final_dist": final_dist.mean(),
                "return": ret.mean(), "action_magnitude": mag_sum / max(mag_count, 1)}

    def _eval_metrics(self, actor: Actor, recipe: Recipe, split: str) -> dict[str, float]:
        seeds = VAL_SEEDS if split == "val" else TEST_SEEDS
        noise = VAL_NOISE_SEED if split == "val" else TEST_NOISE_SEED
        seeds = seeds[: self.cfg.eval_episodes]
        out = {f"{split}/{k}": float(v) for k, v in self.evaluate(actor, seeds, recipe, False, noise).items()}
        det = self.evaluate(actor, seeds, recipe, True, noise)
        out.update({f"{split}/{k}_det": float(v) for k, v in det.items() if k != "action_magnitude"})
        return out

    def evaluate_checkpoint(self, checkpoint: dict, seed: int) -> dict[str, float]:
        """The validation metrics over fresh episodes (seeds from 30,000 up: neither validation nor test ones)
        under the recipe the checkpoint was trained with; the action noise drawn with ``seed`` too."""
        actor = Actor(self.cfg.hidden)
        actor.load_state_dict(checkpoint["actor"])
        recipe = checkpoint["applied"] or self.base_recipe()
        n = self.cfg.eval_episodes
        seeds = range(30_000 + n * (seed % 100_000), 30_000 + n * (seed % 100_000 + 1))
        return {f"val/{k}": float(v) for k, v in self.evaluate(actor, seeds, recipe, False, 50_000 + seed).items()}

    # ---- training --------------------------------------------------------------------
    def train_segment(self, checkpoint: dict, recipe: Recipe, segment: Segment, on_eval: OnEval) -> SegmentResult:
        cfg = self.cfg
        recipe = self.surface.check(recipe)
        live = self._resume(checkpoint)
        self._apply(live, recipe, checkpoint["applied"])  # only here, at the segment boundary
        buf = _Rollout.empty(cfg.rollout_steps, cfg.num_envs)
        metrics: dict[str, float] = {}
        for i in range(1, segment.steps + 1):
            magnitude = self._rollout(live, buf)  # T steps in each of the N environments
            adv, ret = self._advantages(live, buf)  # GAE
            update = self._update(live, buf, adv, ret, recipe)  # clipped PPO over shuffled minibatches
            last_step = i == segment.steps
            if i % segment.eval_every == 0 or last_step:
                metrics = self._metrics(live, buf, ret, update, magnitude / cfg.batch_size)
                metrics.update(self._eval_metrics(live.actor, recipe, "val"))
                if last_step:
                    metrics.update(self._eval_metrics(live.actor, recipe, "test"))
                if on_eval(segment.start_step + i, metrics) and not last_step:
                    return SegmentResult(None, i, metrics, stopped=True)
        return SegmentResult(live.checkpoint(recipe, cfg), segment.steps, metrics)

    def _resume(self, checkpoint: dict) -> "_Live":
        """Networks, optimizers, generator and environments as the parent's checkpoint left them."""
        cfg = self.cfg
        actor, critic = Actor(cfg.hidden), critic_net(cfg.hidden)
        actor.load_state_dict(checkpoint["actor"])
        critic.load_state_dict(checkpoint["critic"])
        actor_opt = actor_optimizer(actor)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, eps=1e-5)
        actor_opt.load_state_dict(checkpoint["actor_optim"])
        critic_opt.load_state_dict(checkpoint["critic_optim"])
        gen = torch.Generator()
        gen.set_state(checkpoint["rng"])
        envs = [make_env(cfg.max_steps) for _ in range(cfg.num_envs)]
        for env, state in zip(envs, checkpoint["envs"]):
            env.set_state(state)
        return _Live(actor, critic, actor_opt, critic_opt, gen, envs,
                     obs=np.array(checkpoint["obs"], dtype=np.float32),  # (N, OBS_DIM)
                     ep_return=list(checkpoint["ep_return"]), ep_length=list(checkpoint["ep_length"]),
                     window=deque(checkpoint["window"], maxlen=cfg.train_window),
                     update=checkpoint["update"], env_steps=checkpoint["env_steps"])

    def _apply(self, live: "_Live", recipe: Recipe, applied: Recipe | None) -> None:
        """The recipe into the optimizers, the policy's noise (when it changed) and the environments."""
        mean_group, log_std_group = live.actor_opt.param_groups
        mean_group["lr"] = recipe["actor_lr"]
        log_std_group["lr"] = recipe["actor_lr"] * self.cfg.log_std_lr_scale
        if applied is None or not math.isclose(applied["action_std"], recipe["action_std"], rel_tol=1e-9):
            with torch.no_grad():
                live.actor.log_std.fill_(math.log(min(max(recipe["action_std"], STD_LOW), STD_HIGH)))
        for env in live.envs:
            env.movement_cost, env.safety_penalty = recipe["movement_cost"], recipe["safety_penalty"]

    def _rollout(self, live: "_Live", buf: "_Rollout") -> float:
        """T steps in each of the N environments into ``buf``; episodes reset as they end. Returns the summed
        magnitude of the executed actions."""
        cfg, obs, gen = self.cfg, live.obs, live.gen
        mag_sum = 0.0
        for t in range(cfg.rollout_steps):
            obs_t = torch.tensor(obs)  # (N, OBS_DIM), a copy: obs is overwritten below
            with torch.no_grad():
                dist = live.actor(obs_t)
                action = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)  # (N, ACT_DIM)
                buf.logp[t] = dist.log_prob(action).sum(-1)  # (N,)
                buf.val[t] = live.critic(obs_t).squeeze(-1)  # (N,)
            buf.obs[t], buf.act[t] = obs_t, action
            executed = action.clamp(-1.0, 1.0).numpy()  # the env clips too; clip here to measure it
            mag_sum += float(np.linalg.norm(executed, axis=1).sum())
            for n, env in enumerate(live.envs):
                o, r, term, trunc, info = env.step(executed[n])
                live.ep_return[n] += r
                live.ep_length[n] += 1
                if trunc and not term:  # time limit: bootstrap from the value of the last observation
                    with torch.no_grad():
                        r += cfg.gamma * live.critic(torch.from_numpy(o)).item()
                buf.rew[t, n] = r
                buf.done[t, n] = float(term or trunc)
                if term or trunc:
                    live.window.append((float(info["safe_success"]), float(info["collision"]), live.ep_return[n],
                                        info["distance"], live.ep_length[n]))
                    live.ep_return[n], live.ep_length[n] = 0.0, 0
                    o, _ = env.reset()
                obs[n] = o
        live.env_steps += cfg.batch_size
        return mag_sum

    def _advantages(self, live: "_Live", buf: "_Rollout") -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and returns, each (T, N), cut at episode ends (done[t] = the episode ended after t)."""
        cfg = self.cfg
        T, N = cfg.rollout_steps, cfg.num_envs
        with torch.no_grad():
            next_value = live.critic(torch.from_numpy(live.obs)).squeeze(-1)  # (N,)
        adv = torch.zeros(T, N)
        last = torch.zeros(N)
        for t in reversed(range(T)):
            nv = next_value if t == T - 1 else buf.val[t + 1]
            nonterminal = 1.0 - buf.done[t]
            delta = buf.rew[t] + cfg.gamma * nv * nonterminal - buf.val[t]
            last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
            adv[t] = last
        return adv, adv + buf.val

    def _update(self, live: "_Live", buf: "_Rollout", adv: torch.Tensor, ret: torch.Tensor,
                recipe: Recipe) -> "_Update":
        """Clipped PPO over shuffled minibatches, ``update_epochs`` times; the actor's log-std stays in bounds."""
        cfg, B = self.cfg, self.cfg.batch_size
        minibatch = B // cfg.num_minibatches
        b_obs, b_act = buf.obs.reshape(B, OBS_DIM), buf.act.reshape(B, ACT_DIM)
        b_logp, b_adv, b_ret = buf.logp.reshape(B), adv.reshape(B), ret.reshape(B)
        clipfracs, kls = [], []
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(B, generator=live.gen)
            for s in range(0, B, minibatch):
                idx = perm[s:s + minibatch]
                dist = live.actor(b_obs[idx])
                logratio = dist.log_prob(b_act[idx]).sum(-1) - b_logp[idx]  # (M,)
                ratio = logratio.exp()
                with torch.no_grad():
                    kls.append(((ratio - 1) - logratio).mean().item())
                    clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())
                mb_adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)  # (M,)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                entropy = dist.entropy().sum(-1).mean()
                actor_loss = pg_loss - recipe["ent_coef"] * entropy
                live.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                nn.utils.clip_grad_norm_(live.actor.parameters(), cfg.max_grad_norm)
                live.actor_opt.step()
                with torch.no_grad():
                    live.actor.log_std.clamp_(math.log(STD_LOW), math.log(STD_HIGH))
                v_loss = 0.5 * (live.critic(b_obs[idx]).squeeze(-1) - b_ret[idx]).pow(2).mean()
                live.critic_opt.zero_grad(set_to_none=True)
                v_loss.backward()
                nn.utils.clip_grad_norm_(live.critic.parameters(), cfg.max_grad_norm)
                live.critic_opt.step()
        live.update += 1
        return _Update(pg_loss.item(), v_loss.item(), float(np.mean(kls)), float(np.mean(clipfracs)))

    def _metrics(self, live: "_Live", buf: "_Rollout", ret: torch.Tensor, update: "_Update",
                 magnitude: float) -> dict[str, float]:
        """The training metrics after an update (``rl/...``); episode means over the last finished episodes."""
        B = self.cfg.batch_size
        b_ret = ret.reshape(B)
        with torch.no_grad():
            std = live.actor.log_std.exp()  # (1, ACT_DIM)
            entropy = (0.5 + 0.5 * math.log(2 * math.pi) + live.actor.log_std).sum().item()
            var_y = b_ret.var()
            explained = float("nan") if var_y == 0 else (1 - (b_ret - buf.val.reshape(B)).var() / var_y).item()
        metrics = {
            "rl/env_steps": live.env_steps, "rl/updates": live.update, "rl/episodes": len(live.window),
            "rl/action_std": std.mean().item(), "rl/entropy": entropy, "rl/action_magnitude": magnitude,
            "rl/pg_loss": update.pg_loss, "rl/v_loss": update.v_loss,
            "rl/approx_kl": update.approx_kl, "rl/clipfrac": update.clipfrac,
        }
        if live.window:  # rolling means over the last finished training episodes
            w = np.array(live.window, dtype=np.float64).mean(0)  # (5,)
            metrics.update({"rl/safe_success": w[0], "rl/collision_rate": w[1], "rl/return": w[2],
                            "rl/final_dist": w[3], "rl/episode_length": w[4]})
        if math.isfinite(explained):
            metrics["rl/explained_variance"] = explained
        return {k: float(v) for k, v in metrics.items()}


@dataclass
class _Live:
    """One segment's training state: networks, optimizers, generator, environments, running episodes."""

    actor: Actor
    critic: nn.Module
    actor_opt: torch.optim.Adam
    critic_opt: torch.optim.Adam
    gen: torch.Generator
    envs: list[TwoLinkReachEnv]
    obs: np.ndarray  # (N, OBS_DIM), the environments' current observations
    ep_return: list[float]
    ep_length: list[int]
    window: deque  # (success, collision, return, final_dist, length) of the last finished episodes
    update: int
    env_steps: int

    def checkpoint(self, recipe: Recipe, cfg: PPOConfig) -> dict:
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "actor_optim": self.actor_opt.state_dict(), "critic_optim": self.critic_opt.state_dict(),
            "update": self.update, "env_steps": self.env_steps, "rng": self.gen.get_state(),
            "envs": [env.get_state() for env in self.envs], "obs": self.obs.copy(),
            "ep_return": self.ep_return, "ep_length": self.ep_length, "window": list(self.window),
            "applied": dict(recipe), "config": cfg.model_dump(),
        }


@dataclass
class _Rollout:
    """One rollout's buffers, each (T, N, ...)."""

    obs: torch.Tensor
    act: torch.Tensor
    logp: torch.Tensor
    rew: torch.Tensor
    done: torch.Tensor
    val: torch.Tensor

    @classmethod
    def empty(cls, T: int, N: int) -> "_Rollout":
        logp, rew, done, val = (torch.zeros(T, N) for _ in range(4))
        return cls(torch.zeros(T, N, OBS_DIM), torch.zeros(T, N, ACT_DIM), logp, rew, done, val)


@dataclass(frozen=True)
class _Update:
    """What one PPO update reports: the last minibatch's losses, the mean approximate KL and clip fraction."""

    pg_loss: float
    v_loss: float
    approx_kl: float
    clipfrac: float


class ArmScared(ArmTask):
    """``arm_scared``: initial recipe with almost no action noise (std 0.02) and a low actor learning rate."""

    name = "arm_scared"
    start = "scared"


class ArmReckless(ArmTask):
    """``arm_reckless``: initial recipe with huge action noise (std 1.6)."""

    name = "arm_reckless"
    start = "reckless"
