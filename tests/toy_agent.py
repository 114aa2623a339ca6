"""A toy agent for tests/test_registry.py: a multi-armed bandit learner that ignores the observation.

It exists to prove that an agent is one module, one card and one registry line: it uses only the engine's
services and the shared pieces, as a real agent does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rlsuite.config.schema import CommonConfig, param, require
from rlsuite.envs.make import episode_stats, make_vector_env, require_discrete
from rlsuite.run.checkpoint import env_snapshot
from rlsuite.run.engine import Run


@dataclass
class BanditConfig(CommonConfig):
    agent_name = "bandit"
    epsilon: float = param(0.2, "probability of a uniformly random action")

    def validate(self):
        super().validate()
        require(self, ("epsilon",), lambda v: 0 <= v <= 1, "in [0, 1]")


def check_spaces(obs_space, action_space, cfg: BanditConfig | None = None, env_card=None) -> None:
    require_discrete(action_space, "bandit")


def greedy(values: np.ndarray):
    best = int(np.argmax(values))
    return lambda obs: np.full(len(obs), best)


def load_policy(cfg: BanditConfig, spaces, state: dict, device):
    return greedy(state["values"].numpy())


def train(cfg: BanditConfig, run: Run) -> dict:
    envs = make_vector_env(run.env_card, cfg.num_envs)
    n = require_discrete(envs.single_action_space, "bandit")
    rng = np.random.default_rng(run.seed)
    sums, counts = np.zeros(n), np.zeros(n)
    step = 0
    obs, _ = envs.reset(seed=run.seed)
    if run.restored:
        s = run.restored["state"]
        sums, counts, step = s["sums"].numpy(), s["counts"].numpy(), run.restored["step"]
        rng.bit_generator.state = s["rng"]
        obs = run.restore_envs(envs)

    def values() -> np.ndarray:
        return sums / np.maximum(counts, 1)

    def snapshot() -> dict:
        return {"sums": torch.as_tensor(sums), "counts": torch.as_tensor(counts), "values": torch.as_tensor(values()),
                "rng": rng.bit_generator.state, **env_snapshot(envs, obs)}

    run.start_clock()
    while step < cfg.total_steps:
        explore = rng.random(cfg.num_envs) < cfg.epsilon
        actions = np.where(explore, rng.integers(n, size=cfg.num_envs), int(np.argmax(values())))
        obs, rewards, terminated, truncated, info = envs.step(actions)
        step += cfg.num_envs
        for _, episode_return, length in episode_stats(info):
            run.log_episode(step, episode_return, length)
        np.add.at(sums, actions, rewards)
        np.add.at(counts, actions, 1)
        if run.after_iteration(step, greedy(values()), snapshot):
            break
    envs.close()
    return run.finish(step, greedy(values()), snapshot())
