"""Gymnasium's classic-control environments as batched tensor dynamics (env card `backend: torch`).

CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 step all their
sub-envs with one set of tensor operations instead of one Python call per sub-env. They are
gymnasium's environments, not look-alikes:

- the dynamics are gymnasium's equations in float64, step for step (Acrobot's RK4 and angle wrapping,
  Pendulum's clipping and angle normalisation, MountainCar's wall), and the stored state is rounded
  where gymnasium rounds it (Acrobot's reset state, MountainCarContinuous's float32 state);
- each sub-env draws its resets from its own generator, made from its seed as gymnasium seeds an
  env, with the same calls: from the same seeds the reset states are gymnasium's, bit for bit;
- the vector env behaves like `make_vector_env`'s gymnasium one: SAME_STEP autoreset with the true
  final observation in `info["final_obs"]`, the registered time limit as truncation, and episode
  statistics in `info["episode"]` (RecordEpisodeStatistics's keys).

tests/test_torch_classic.py checks this against gymnasium over many random states and actions.
Evaluation always runs gymnasium's own env, so every reported return is gymnasium's.

The dynamics are written once against an array namespace `xp`: numpy on the CPU, where a batch of a few
hundred small vectors is stepped fastest by numpy's ufuncs (torch's per-operation dispatch costs about three
times numpy's there), and torch on a GPU (`device="cuda"`). Observations and rewards come back as numpy
arrays, the interface every agent's loop takes.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding

from rlsuite.core.errors import UserError


class TorchClassicEnv(gym.vector.VectorEnv):
    """A batch of one classic-control env. Subclasses give the spaces, the reset draw and `dynamics`."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    env_id = ""
    max_episode_steps = 0
    options: tuple[str, ...] = ()  # make_kwargs the env takes (besides max_episode_steps)

    def __init__(self, num_envs: int, device: str | torch.device = "cpu", max_episode_steps: int | None = None,
                 **kwargs):
        unknown = set(kwargs) - set(self.options)
        if unknown:
            raise UserError(f"{self.env_id} (backend torch) takes no argument(s) {sorted(unknown)}; "
                            f"it takes {sorted(self.options) or 'none'} and max_episode_steps")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.xp = np if self.device.type == "cpu" else torch
        self.limit = int(max_episode_steps or self.max_episode_steps)
        self.configure(**kwargs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.generators = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self.state = self.array(np.zeros((num_envs, self.state_dim)))
        self.elapsed = np.zeros(num_envs, np.int64)
        self.episode_return = np.zeros(num_envs)

    def configure(self, **kwargs) -> None:
        """Take the env's own make_kwargs."""

    def array(self, x: np.ndarray):
        """A float64 numpy array as the namespace's array (a tensor on the device for torch)."""
        return x if self.xp is np else torch.as_tensor(x, dtype=torch.float64, device=self.device)

    # -- what a subclass gives --------------------------------------------------------------------
    def draw_reset(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def dynamics(self, xp, state, action):
        """(N, S) float64 states and (N,) or (N, A) actions in namespace xp -> next states, rewards (N,),
        terminated (N,)."""
        raise NotImplementedError

    def observe(self, xp, state):
        return state

    # -- the vector env ---------------------------------------------------------------------------
    def _reset_envs(self, index) -> None:
        for i in index:
            self.state[i] = self.array(np.asarray(self.draw_reset(self.generators[i]), np.float64))
        self.elapsed[index] = 0
        self.episode_return[index] = 0.0

    def reset(self, *, seed=None, options=None):
        """seed: an int (sub-env i gets seed + i, as gymnasium's vector envs do) or one seed per sub-env."""
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
            self.generators = [seeding.np_random(s)[0] for s in seeds]
        self._reset_envs(range(self.num_envs))
        return self._obs(self.state), {}

    def _obs(self, state) -> np.ndarray:
        obs = self.observe(self.xp, state)
        return obs.astype(np.float32) if self.xp is np else obs.to(torch.float32).cpu().numpy()

    def _numpy(self, x) -> np.ndarray:
        return x if self.xp is np else x.cpu().numpy()

    def step(self, actions):
        action = np.asarray(actions) if self.xp is np else torch.as_tensor(np.asarray(actions), device=self.device)
        self.state, reward, terminated = self.dynamics(self.xp, self.state, action)
        reward, terminated = self._numpy(reward), self._numpy(terminated)
        self.elapsed += 1
        truncated = self.elapsed >= self.limit
        self.episode_return += reward
        obs = self._obs(self.state)
        info: dict = {}
        done = terminated | truncated
        if done.any():
            ended = np.flatnonzero(done)
            final_obs = np.empty(self.num_envs, dtype=object)
            final_obs[ended] = list(obs[ended])
            info = {"final_obs": final_obs, "_final_obs": done, "final_info": {}, "_final_info": done,
                    "episode": {"r": np.where(done, self.episode_return, 0.0), "l": np.where(done, self.elapsed, 0),
                                "t": np.zeros(self.num_envs)}, "_episode": done}
            self._reset_envs(ended.tolist())
            obs = obs.copy()
            obs[ended] = self._obs(self.state[ended])
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs):
        pass

    # -- exact resume -----------------------------------------------------------------------------
    def state_dict(self, rows: slice = slice(None)) -> dict:
        """The sub-envs' state (`rows`: some of them, e.g. one member's of a population)."""
        return {"state": torch.as_tensor(self._numpy(self.state)[rows]).clone(),
                "elapsed": torch.from_numpy(self.elapsed[rows].copy()),
                "episode_return": torch.from_numpy(self.episode_return[rows].copy()),
                "generators": [g.bit_generator.state for g in self.generators[rows]]}

    def load_state_dict(self, data: dict) -> None:
        self.state = self.array(data["state"].numpy().astype(np.float64))
        self.elapsed = data["elapsed"].numpy().copy()
        self.episode_return = data["episode_return"].numpy().copy()
        for g, s in zip(self.generators, data["generators"]):
            g.bit_generator.state = s


def float32(x):
    """Round to float32 and back to float64, in either namespace: where gymnasium computes in float32."""
    return x.astype(np.float32).astype(np.float64) if isinstance(x, np.ndarray) else x.float().double()


# ---------------------------------------------------------------------------------------------
class CartPole(TorchClassicEnv):
    """gymnasium.envs.classic_control.cartpole.CartPoleEnv (Barto, Sutton & Anderson 1983), Euler steps."""

    env_id, max_episode_steps, options = "CartPole-v1", 500, ("sutton_barto_reward",)
    state_dim = 4
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass = masspole + masscart
    polemass_length = masspole * length
    theta_threshold = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def configure(self, sutton_barto_reward: bool = False):
        self.sutton_barto_reward = sutton_barto_reward
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold * 2, np.inf], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)

    def draw_reset(self, rng):
        return rng.uniform(low=-0.05, high=0.05, size=(4,))

    def dynamics(self, xp, state, action):
        x, x_dot, theta, theta_dot = state[:, 0], state[:, 1], state[:, 2], state[:, 3]
        force = xp.where(action == 1, self.force_mag, -self.force_mag)
        costheta, sintheta = xp.cos(theta), xp.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        terminated = (x < -self.x_threshold) | (x > self.x_threshold) | (theta < -self.theta_threshold) | \
                     (theta > self.theta_threshold)
        reward = xp.where(terminated, -1.0, 0.0) if self.sutton_barto_reward else xp.ones_like(x)
        return xp.stack((x, x_dot, theta, theta_dot), 1), reward, terminated


class Acrobot(TorchClassicEnv):
    """gymnasium.envs.classic_control.acrobot.AcrobotEnv (Sutton 1996, the book's dynamics): one RK4 step of dt."""

    env_id, max_episode_steps = "Acrobot-v1", 500
    state_dim = 4
    dt = 0.2
    m1 = m2 = l1 = 1.0
    lc1 = lc2 = 0.5
    moi = 1.0
    max_vel_1, max_vel_2 = 4 * math.pi, 9 * math.pi
    torques = np.array([-1.0, 0.0, 1.0])

    def configure(self):
        high = np.array([1.0, 1.0, 1.0, 1.0, self.max_vel_1, self.max_vel_2], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(3)

    def draw_reset(self, rng):
        return rng.uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)  # gymnasium keeps it in float32

    def derivatives(self, xp, s, a):
        m1, m2, l1, lc1, lc2, moi, g = self.m1, self.m2, self.l1, self.lc1, self.lc2, self.moi, 9.8
        theta1, theta2, dtheta1, dtheta2 = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * xp.cos(theta2)) + moi + moi
        d2 = m2 * (lc2**2 + l1 * lc2 * xp.cos(theta2)) + moi
        phi2 = m2 * lc2 * g * xp.cos(theta1 + theta2 - math.pi / 2.0)
        phi1 = (-m2 * l1 * lc2 * dtheta2**2 * xp.sin(theta2) - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * xp.sin(theta2)
                + (m1 * lc1 + m2 * l1) * g * xp.cos(theta1 - math.pi / 2) + phi2)
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * xp.sin(theta2) - phi2) / \
            (m2 * lc2**2 + moi - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return xp.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), 1)

    def dynamics(self, xp, state, action):
        torque = self.array(self.torques)[action]
        h, h2 = self.dt, self.dt / 2.0
        k1 = self.derivatives(xp, state, torque)
        k2 = self.derivatives(xp, state + h2 * k1, torque)
        k3 = self.derivatives(xp, state + h2 * k2, torque)
        k4 = self.derivatives(xp, state + h * k3, torque)
        s = state + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        theta1, theta2 = wrap(xp, s[:, 0], -math.pi, math.pi), wrap(xp, s[:, 1], -math.pi, math.pi)
        dtheta1 = xp.clip(s[:, 2], -self.max_vel_1, self.max_vel_1)
        dtheta2 = xp.clip(s[:, 3], -self.max_vel_2, self.max_vel_2)
        terminated = -xp.cos(theta1) - xp.cos(theta2 + theta1) > 1.0
        reward = xp.where(terminated, 0.0, -1.0)
        return xp.stack((theta1, theta2, dtheta1, dtheta2), 1), reward, terminated

    def observe(self, xp, state):
        t1, t2 = state[:, 0], state[:, 1]
        return xp.stack((xp.cos(t1), xp.sin(t1), xp.cos(t2), xp.sin(t2), state[:, 2], state[:, 3]), 1)


def wrap(xp, x, low: float, high: float):
    """Acrobot's wrap: subtract (or add) the range until x is inside [low, high]."""
    diff = high - low
    above = xp.clip(xp.ceil((x - high) / diff), 0, None)
    below = xp.clip(xp.ceil((low - x) / diff), 0, None)
    return x - above * diff + below * diff


class MountainCar(TorchClassicEnv):
    """gymnasium.envs.classic_control.mountain_car.MountainCarEnv (Moore 1990)."""

    env_id, max_episode_steps, options = "MountainCar-v0", 200, ("goal_velocity",)
    state_dim = 2
    min_position, max_position, max_speed, goal_position = -1.2, 0.6, 0.07, 0.5
    force, gravity = 0.001, 0.0025

    def configure(self, goal_velocity: float = 0.0):
        self.goal_velocity = goal_velocity
        self.single_observation_space = gym.spaces.Box(np.array([self.min_position, -self.max_speed], np.float32),
                                                       np.array([self.max_position, self.max_speed], np.float32))
        self.single_action_space = gym.spaces.Discrete(3)

    def draw_reset(self, rng):
        return np.array([rng.uniform(low=-0.6, high=-0.4), 0])

    def dynamics(self, xp, state, action):
        position, velocity = state[:, 0], state[:, 1]
        velocity = velocity + ((action - 1) * self.force + xp.cos(3 * position) * (-self.gravity))
        velocity = xp.clip(velocity, -self.max_speed, self.max_speed)
        position = xp.clip(position + velocity, self.min_position, self.max_position)
        velocity = xp.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        return xp.stack((position, velocity), 1), xp.full_like(position, -1.0), terminated


class MountainCarContinuous(MountainCar):
    """gymnasium.envs.classic_control.continuous_mountain_car.Continuous_MountainCarEnv; its state is float32."""

    env_id, max_episode_steps, options = "MountainCarContinuous-v0", 999, ("goal_velocity",)
    goal_position, power = 0.45, 0.0015

    def configure(self, goal_velocity: float = 0.0):
        super().configure(goal_velocity)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def dynamics(self, xp, state, action):
        position, velocity = state[:, 0], state[:, 1]
        action = float32(action[:, 0] * 1.0)  # the float32 action, held in float64
        force = xp.clip(action, -1.0, 1.0)
        # gymnasium adds a float32 increment: force * power and the slope term are rounded to float32 first
        increment = float32(float32(force * self.power) - float32(0.0025 * xp.cos(3 * position)))
        velocity = xp.clip(velocity + increment, -self.max_speed, self.max_speed)
        position = xp.clip(position + velocity, self.min_position, self.max_position)
        velocity = xp.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = xp.where(terminated, 100.0, 0.0) - action**2 * 0.1
        return float32(xp.stack((position, velocity), 1)), reward, terminated  # gymnasium stores float32


class Pendulum(TorchClassicEnv):
    """gymnasium.envs.classic_control.pendulum.PendulumEnv: torque-limited swing-up, reward -(θ² + 0.1 θ̇² + 0.001 u²)."""

    env_id, max_episode_steps, options = "Pendulum-v1", 200, ("g",)
    state_dim = 2
    max_speed, max_torque, dt, m, l = 8.0, 2.0, 0.05, 1.0, 1.0

    def configure(self, g: float = 10.0):
        self.g = g
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)

    def draw_reset(self, rng):
        high = np.array([np.pi, 1.0])
        return rng.uniform(low=-high, high=high)

    def dynamics(self, xp, state, action):
        th, thdot = state[:, 0], state[:, 1]
        u = xp.clip(float32(action[:, 0] * 1.0), -self.max_torque, self.max_torque)  # gymnasium's u is float32
        costs = angle_normalize(xp, th) ** 2 + 0.1 * thdot**2 + float32(0.001 * u**2)
        newthdot = thdot + (3 * self.g / (2 * self.l) * xp.sin(th) + float32(3.0 / (self.m * self.l**2) * u)) * self.dt
        newthdot = xp.clip(newthdot, -self.max_speed, self.max_speed)
        newth = th + newthdot * self.dt
        return xp.stack((newth, newthdot), 1), -costs, th > math.inf  # never terminates: the time limit ends it

    def observe(self, xp, state):
        return xp.stack((xp.cos(state[:, 0]), xp.sin(state[:, 0]), state[:, 1]), 1)


def angle_normalize(xp, x):
    return xp.remainder(x + math.pi, 2 * math.pi) - math.pi


TORCH_ENVS = {cls.env_id: cls for cls in (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum)}


def make_torch_vector_env(env_id: str, num_envs: int, make_kwargs: dict, device="cpu") -> TorchClassicEnv:
    if env_id not in TORCH_ENVS:
        raise UserError(f"{env_id} has no torch backend (there is one for {', '.join(TORCH_ENVS)}); "
                        "use backend: gymnasium in the env card, or --env-backend gymnasium")
    return TORCH_ENVS[env_id](num_envs, device, **make_kwargs)
