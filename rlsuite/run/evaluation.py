"""The one evaluation protocol (docs/protocol.md), used for rlsuite agents and SB3 alike.

`evaluate` plays exactly `episodes` episodes, one per sub-env of a vector env, each seeded
`seed + i`, with a deterministic policy, and returns the raw environment returns. Running one
episode per sub-env (instead of counting finished episodes) avoids the bias towards short
episodes that counting would bring.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from rlsuite.config.schema import EnvCard
from rlsuite.envs.make import make_env

Act = Callable[[np.ndarray], np.ndarray]  # batch of observations -> batch of actions


def evaluate(act: Act, card: EnvCard, episodes: int, seed: int, max_steps: int = 108_000) -> np.ndarray:
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(card, training=False) for _ in range(episodes)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        done = np.zeros(episodes, dtype=bool)
        for _ in range(max_steps):
            obs, rewards, terminated, truncated, _ = envs.step(act(obs))
            returns += np.where(done, 0.0, rewards)
            done |= terminated | truncated
            if done.all():
                break
        return returns
    finally:
        envs.close()
