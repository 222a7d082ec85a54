"""TwoLinkReach: a planar two-link arm that must swing around an obstacle to reach a target.

Registered as ``searchmgr/TwoLinkReach-v0`` when this module is imported::

    import gymnasium, searchmgr.tasks._reach_env
    env = gymnasium.make("searchmgr/TwoLinkReach-v0", movement_cost=0.005, safety_penalty=1.0)

Geometry (lengths in metres, angles in radians). The base sits at the origin, both
links are 0.5 long, and the arm starts fully extended and horizontal (end effector
at (1, 0)). The target lies up and to the left, at (0, 0.8); a circular obstacle
of radius 0.15 sits at (0.55, 0.45), on the straight line between the end
effector and the target. Moving the end effector straight at the target, or
interpolating the joints straight to either inverse-kinematics solution, runs
into the obstacle, and so does greedily closing the distance (the reward's
direction). The arm must make a detour through joint space: swing the forearm
round (clockwise, through the folded pose, which first moves the end effector
away from the target) while the shoulder rises, so that the elbow passes just
under the obstacle (about 0.06 clearance), then open onto the target from above.
The elbow joint has no limit, so the forearm may turn a full circle. Resets
jitter the target, the obstacle and the start angles slightly, so evaluation
seeds differ.

Dynamics are kinematic: the action is a pair of joint velocities in [-1, 1]
(scaled by ``max_joint_step`` radians per step), integrated once per step.

An episode ends when
- the end effector comes within ``success_radius`` of the target *gently*, with both
  joint speeds of that step at most ``arrive_speed`` (a fraction of the maximum):
  ``terminated``, ``info["safe_success"] = True``. A collision in the same step wins,
  so every success is a safe one. Arriving gently is what makes action noise
  costly: a policy whose noise is large rarely makes a slow step inside the target
  region before the step limit,
- either link segment or the end effector touches the obstacle circle (``terminated``,
  ``info["collision"] = True``), judged by segment-to-circle-centre distance,
- or ``max_steps`` steps have passed (``truncated``).

Reward per step: progress (the decrease in end-effector distance to the target)
minus ``movement_cost * |action|^2`` minus ``safety_penalty`` on collision, plus
``success_bonus`` on reaching the target. ``movement_cost`` and ``safety_penalty``
are plain attributes so a trainer can change them between PPO updates.

Observation (15 floats): sin/cos of both joint angles, the last action (the joint
velocities), the end-effector position, the target and the obstacle relative to
the end effector, the obstacle relative to the elbow, and the clearance (distance
from the arm to the obstacle surface, negative inside).

``get_state()``/``set_state()`` capture everything that defines the environment
between steps (angles, last action, step count, jittered geometry, RNG), so a
trainer can checkpoint and resume a half-finished episode exactly.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

ENV_ID = "searchmgr/TwoLinkReach-v0"

L1 = 0.5  # upper-arm length
L2 = 0.5  # forearm length
OBS_DIM = 15
OBS_BOUND = 4.0  # every observation component lies in [-4, 4] (the arm reaches 1, the scene is within 1.2)


def segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    """Euclidean distance from point p to the segment a-b."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0.0 else ((px - ax) * dx + (py - ay) * dy) / length2
    t = min(1.0, max(0.0, t))
    return math.hypot(ax + t * dx - px, ay + t * dy - py)


def forward_kinematics(q1: float, q2: float) -> tuple[float, float, float, float]:
    """Elbow (x, y) and end-effector (x, y) for joint angles q1 (shoulder) and q2 (elbow, relative)."""
    ex, ey = L1 * math.cos(q1), L1 * math.sin(q1)
    return ex, ey, ex + L2 * math.cos(q1 + q2), ey + L2 * math.sin(q1 + q2)


def arm_clearance(q1: float, q2: float, ox: float, oy: float, radius: float) -> float:
    """Distance from both links (base-elbow, elbow-effector) to the obstacle surface; < 0 means collision."""
    ex, ey, fx, fy = forward_kinematics(q1, q2)
    d = min(segment_distance(ox, oy, 0.0, 0.0, ex, ey), segment_distance(ox, oy, ex, ey, fx, fy))
    return d - radius


class TwoLinkReachEnv(gymnasium.Env):
    """Planar two-link reach around a circular obstacle (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        movement_cost: float = 0.005,
        safety_penalty: float = 1.0,
        success_bonus: float = 1.0,
        max_steps: int = 80,
        max_joint_step: float = 0.1,
        success_radius: float = 0.07,
        arrive_speed: float = 0.25,
        target: tuple[float, float] = (0.0, 0.8),
        obstacle: tuple[float, float] = (0.55, 0.45),
        obstacle_radius: float = 0.15,
        jitter: float = 0.03,
        start_jitter: float = 0.02,
    ):
        self.movement_cost = float(movement_cost)
        self.safety_penalty = float(safety_penalty)
        self.success_bonus = float(success_bonus)
        self.max_steps = int(max_steps)
        self.max_joint_step = float(max_joint_step)
        self.success_radius = float(success_radius)
        self.arrive_speed = float(arrive_speed)
        self.base_target = (float(target[0]), float(target[1]))
        self.base_obstacle = (float(obstacle[0]), float(obstacle[1]))
        self.obstacle_radius = float(obstacle_radius)
        self.jitter = float(jitter)
        self.start_jitter = float(start_jitter)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(OBS_DIM,), dtype=np.float32)
        # episode state (set by reset)
        self.q = [0.0, 0.0]
        self.last_action = [0.0, 0.0]
        self.t = 0
        self.target = self.base_target
        self.obstacle = self.base_obstacle

    # ---- geometry helpers -------------------------------------------------------------
    def distance_to_target(self) -> float:
        _, _, fx, fy = forward_kinematics(*self.q)
        return math.hypot(fx - self.target[0], fy - self.target[1])

    def clearance(self) -> float:
        return arm_clearance(self.q[0], self.q[1], self.obstacle[0], self.obstacle[1], self.obstacle_radius)

    def _obs(self) -> np.ndarray:
        q1, q2 = self.q
        ex, ey, fx, fy = forward_kinematics(q1, q2)
        (tx, ty), (ox, oy) = self.target, self.obstacle
        return np.array([
            math.sin(q1), math.cos(q1), math.sin(q2), math.cos(q2),
            self.last_action[0], self.last_action[1],
            fx, fy, tx - fx, ty - fy, ox - fx, oy - fy, ox - ex, oy - ey,
            self.clearance(),
        ], dtype=np.float32)

    # ---- gymnasium API ----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        u = self.np_random.uniform(-1.0, 1.0, size=6)
        self.q = [float(self.start_jitter * u[0]), float(self.start_jitter * u[1])]
        self.target = (self.base_target[0] + self.jitter * float(u[2]), self.base_target[1] + self.jitter * float(u[3]))
        self.obstacle = (self.base_obstacle[0] + self.jitter * float(u[4]),
                         self.base_obstacle[1] + self.jitter * float(u[5]))
        self.last_action = [0.0, 0.0]
        self.t = 0
        return self._obs(), {"distance": self.distance_to_target()}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        a0, a1 = float(a[0]), float(a[1])
        before = self.distance_to_target()
        # integrate joint velocities; angles wrap to (-pi, pi]
        q1 = self.q[0] + self.max_joint_step * a0
        q2 = self.q[1] + self.max_joint_step * a1
        self.q = [math.remainder(q1, 2 * math.pi), math.remainder(q2, 2 * math.pi)]
        self.last_action = [a0, a1]
        self.t += 1
        after = self.distance_to_target()
        collision = self.clearance() < 0.0
        gentle = max(abs(a0), abs(a1)) <= self.arrive_speed
        success = (not collision) and gentle and after < self.success_radius
        reward = (before - after) - self.movement_cost * (a0 * a0 + a1 * a1)
        if collision:
            reward -= self.safety_penalty
        if success:
            reward += self.success_bonus
        terminated = collision or success
        truncated = (not terminated) and self.t >= self.max_steps
        info = {"safe_success": success, "collision": collision, "distance": after}
        return self._obs(), float(reward), terminated, truncated, info

    # ---- exact checkpointing ----------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything that defines the environment between steps (plain Python values)."""
        return {
            "q": list(self.q), "last_action": list(self.last_action), "t": self.t,
            "target": self.target, "obstacle": self.obstacle,
            "rng": self.np_random.bit_generator.state,
            "movement_cost": self.movement_cost, "safety_penalty": self.safety_penalty,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.q = [float(v) for v in state["q"]]
        self.last_action = [float(v) for v in state["last_action"]]
        self.t = int(state["t"])
        self.target = tuple(state["target"])
        self.obstacle = tuple(state["obstacle"])
        self.movement_cost = float(state["movement_cost"])
        self.safety_penalty = float(state["safety_penalty"])
        self.np_random.bit_generator.state = state["rng"]

    def configure(self, q: tuple[float, float], target: tuple[float, float] | None = None,
                  obstacle: tuple[float, float] | None = None) -> np.ndarray:
        """Place the arm (and optionally the target/obstacle) by hand; returns the observation."""
        self.q = [float(q[0]), float(q[1])]
        if target is not None:
            self.target = (float(target[0]), float(target[1]))
        if obstacle is not None:
            self.obstacle = (float(obstacle[0]), float(obstacle[1]))
        return self._obs()


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point=TwoLinkReachEnv, max_episode_steps=None)
