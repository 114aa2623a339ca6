"""Agent registry: name -> config class, train function, policy loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rlsuite.errors import UserError, close_matches


@dataclass(frozen=True)
class AgentSpec:
    name: str
    config_cls: type
    train: Callable  # train(config, run) -> summary dict
    load_policy: Callable  # load_policy(config, (obs_space, action_space), state, device) -> act
    check_spaces: Callable  # check_spaces(obs_space, action_space) raises UserError if unsupported
    summary: str


def _registry() -> dict[str, AgentSpec]:
    from rlsuite.agents import dqn, pg

    return {
        "dqn": AgentSpec("dqn", dqn.DQNConfig, dqn.train, dqn.load_policy, dqn.check_spaces,
                         "DQN with double, dueling, n-step and prioritized-replay switches"),
        "reinforce": AgentSpec("reinforce", pg.ReinforceConfig, pg.train, pg.load_policy, pg.check_spaces,
                               "REINFORCE: Monte-Carlo policy gradient, optional value baseline"),
        "a2c": AgentSpec("a2c", pg.A2CConfig, pg.train, pg.load_policy, pg.check_spaces,
                         "A2C: synchronous advantage actor-critic, n-step GAE"),
        "ppo": AgentSpec("ppo", pg.PPOConfig, pg.train, pg.load_policy, pg.check_spaces,
                         "PPO: clipped surrogate, GAE, minibatch epochs; discrete and continuous actions"),
    }


def agent_names() -> list[str]:
    return list(_registry())


def get_agent(name: str) -> AgentSpec:
    registry = _registry()
    if name not in registry:
        raise UserError(f"unknown agent '{name}'{close_matches(name, registry)}; available: {', '.join(registry)}")
    return registry[name]
