"""The one evaluation protocol (docs/protocol.md), used for rlsuite agents and SB3 alike.

`evaluate` plays exactly `episodes` episodes, one per sub-env of a vector env, episode i seeded
`seeds[i]` (a run's own evaluation seeds, rlsuite.core.seeding) or `seed + i`, with a deterministic policy, and returns the raw environment returns. Running one
episode per sub-env (instead of counting finished episodes) avoids the bias towards short
episodes that counting would bring.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from rlsuite.config.schema import EnvCard
from rlsuite.core.seeding import episode_seeds
from rlsuite.envs.make import make_env

Act = Callable[[np.ndarray], np.ndarray]  # batch of observations -> batch of actions


def evaluate(act: Act, card: EnvCard, episodes: int, seed: int | list[int], max_steps: int = 108_000) -> np.ndarray:
    """The returns of EPISODES episodes (see evaluate_episodes; episodes cut at max_steps are counted there)."""
    return evaluate_episodes(act, card, episodes, seed, max_steps)[0]


def evaluate_episodes(act: Act, card: EnvCard, episodes: int, seed: int | list[int], max_steps: int = 108_000
                      ) -> tuple[np.ndarray, int]:
    """(returns, cut): one episode per env, the deterministic policy; an episode still running after MAX_STEPS
    steps is cut there, its return so far kept and counted in `cut` (a truncation by this evaluation, not by the
    env), so that a report can say how many of its returns are partial."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(card, training=False) for _ in range(episodes)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    try:
        obs, _ = envs.reset(seed=episode_seeds(seed, episodes))
        returns = np.zeros(episodes)
        done = np.zeros(episodes, dtype=bool)
        for _ in range(max_steps):
            obs, rewards, terminated, truncated, _ = envs.step(act(obs))
            returns += np.where(done, 0.0, rewards)
            done |= terminated | truncated
            if done.all():
                break
        return returns, int((~done).sum())
    finally:
        envs.close()
