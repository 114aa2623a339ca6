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
