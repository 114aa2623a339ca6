"""Tiny environments for error-path tests, registered on import (`toy_envs:EnvId` ids)."""

import gymnasium as gym
import numpy as np


class NanRewardEnv(gym.Env):
    """CartPole-like observations; the reward turns NaN after `bad_after` steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, bad_after: int = 40):
        self.bad_after, self.t = bad_after, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float("nan") if self.t > self.bad_after else 1.0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), reward, False, self.t >= 100, {}


class MultiBinaryEnv(NanRewardEnv):
    action_space = gym.spaces.MultiBinary(3)


class DictObsEnv(NanRewardEnv):
    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (3,), np.float32)})


gym.register("NanReward-v0", entry_point=NanRewardEnv)
gym.register("MultiBinaryAct-v0", entry_point=MultiBinaryEnv)
gym.register("DictObs-v0", entry_point=DictObsEnv)


class OddSeedNanEnv(NanRewardEnv):
    """Healthy for even seeds; NaN rewards after 40 steps for odd seeds (a run that crashes mid-sweep)."""

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.bad_after = 40 if seed % 2 else 10**9
        return super().reset(seed=seed, options=options)


gym.register("OddSeedNan-v0", entry_point=OddSeedNanEnv)


class NanObsEnv(NanRewardEnv):
    """Observations turn NaN after 30 steps (a broken sensor, say)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return (obs * np.nan if self.t > 30 else obs), 1.0, terminated, truncated, info


gym.register("NanObs-v0", entry_point=NanObsEnv)


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, never terminates; the same observation always. Registered under a TimeLimit of
    20 steps: an agent that bootstraps at the time limit learns V = 1/(1-γ); one that treats the limit as
    a terminal state learns the mean truncated return instead (6.05 for γ = 0.9)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([1.0, 0.0], np.float32), {}

    def step(self, action):
        return np.array([1.0, 0.0], np.float32), 1.0, False, False, {}


class CountdownEnv(gym.Env):
    """Reward 1 every step, terminates after 5 steps; the observation is the step number (one-hot), so
    V(first obs) = 1 + γ + ... + γ^4 (4.0951 for γ = 0.9)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (6,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def _obs(self):
        return np.eye(6, dtype=np.float32)[self.t]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= 5, False, {}


class ConstantRewardContinuousEnv(ConstantRewardEnv):
    """ConstantReward with a Box action (SAC, TD3, continuous PPO): the reward ignores the action, so every
    Q(s, a) is V(s)."""

    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


gym.register("ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=20)
gym.register("ConstantRewardContinuous-v0", entry_point=ConstantRewardContinuousEnv, max_episode_steps=20)
gym.register("Countdown-v0", entry_point=CountdownEnv)


class KillOddSeedEnv(NanRewardEnv):
    """Reset with the seed of a seed-0 run's second training sub-env kills the process with SIGKILL (a worker
    lost to the OOM killer, say); a run with one training env, and evaluation envs, never do."""

    def reset(self, *, seed=None, options=None):
        from rlsuite.core.seeding import Seeds

        if seed is not None and seed == Seeds(0).train_envs(2)[1]:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        self.bad_after = 10**9
        return super().reset(seed=seed, options=options)


gym.register("KillOddSeed-v0", entry_point=KillOddSeedEnv)


class UnboundedActionsEnv(NanRewardEnv):
    """Continuous actions with infinite bounds: SAC/TD3 cannot squash into them."""

    action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)


class MatrixActionsEnv(NanRewardEnv):
    """A 2x2 Box of actions: not a flat vector."""

    action_space = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)


class DictObsBoxActionsEnv(NanRewardEnv):
    """Continuous actions SAC/TD3 can take, observations they cannot (a Dict)."""

    observation_space = DictObsEnv.observation_space
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


gym.register("UnboundedActions-v0", entry_point=UnboundedActionsEnv)
gym.register("DictObsBoxActions-v0", entry_point=DictObsBoxActionsEnv)
gym.register("MatrixActions-v0", entry_point=MatrixActionsEnv)


class TriangleEnv(gym.Env):
    """Episodes of a random length L in [3, 9] (from the env's own RNG), reward t at step t, so the return is
    L(L+1)/2: a logged return and length that disagree by a step or a reward break that relation. Registered
    under a TimeLimit of 7 steps, so some episodes are truncations."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, 10))
        return np.array([1.0, 0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([1.0, self.t / 10], np.float32), float(self.t), self.t >= self.length, False, {}


class TriangleContinuousEnv(TriangleEnv):
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


gym.register("Triangle-v0", entry_point=TriangleEnv, max_episode_steps=7)
gym.register("TriangleContinuous-v0", entry_point=TriangleContinuousEnv, max_episode_steps=7)


class IdentityEnv(gym.Env):
    """SB3's identity test: the observation is a one-hot target among 4, reward 1 when the action is it; 10 steps
    an episode. A learner reaches 10; random actions score 2.5."""

    observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def _obs(self):
        return np.eye(4, dtype=np.float32)[self.target]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.target = 0, int(self.np_random.integers(4))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.t += 1
        self.target = int(self.np_random.integers(4))
        return self._obs(), reward, False, self.t >= 10, {}


class IdentityBoxEnv(gym.Env):
    """The continuous identity: observation x in [-1, 1], reward 1 - (a - x)^2, 10 steps an episode. A learner
    reaches about 10; random actions 10 × (1 - 2/3) ≈ 3.3 in expectation."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, self.np_random.uniform(-1, 1, (1,)).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action):
        reward = 1.0 - float((np.asarray(action, np.float32).reshape(1) - self.x)[0] ** 2)
        self.t += 1
        self.x = self.np_random.uniform(-1, 1, (1,)).astype(np.float32)
        return self.x.copy(), reward, False, self.t >= 10, {}


gym.register("Identity-v0", entry_point=IdentityEnv)
gym.register("IdentityBox-v0", entry_point=IdentityBoxEnv)
