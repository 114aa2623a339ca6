"""The agent registry: name -> config class, train function, policy loader, space check.

Adding an agent is one module in rlsuite/agents/, one card in cards/agents/, and one line here. Every kind
of run directory is named here, the supervised classifiers included, so commands that take a run
directory (eval, list, resume) look an agent up in one place."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

from rlsuite.agents import dqn, pg, sac_td3
from rlsuite.core.errors import UserError, close_matches
from rlsuite.supervised.classifier import SupervisedConfig


@dataclass(frozen=True)
class AgentSpec:
    name: str
    config_cls: type
    train: Callable | None  # train(config, run) -> summary dict (None: trained by its own command)
    # load_policy(config, (obs_space, action_space), state, device[, sample_seed=None]) -> act: the deterministic
    # policy; with a sample_seed (optional to offer), the stochastic one (eval_deterministic: false)
    load_policy: Callable | None
    check_spaces: Callable | None  # check_spaces(obs_space, action_space, config) raises UserError if unsupported
    summary: str
    kind: str = "rl"  # rl | supervised
    # train_population(config, population) -> one result per member; None: seeds train one after another
    train_population: Callable | None = None
    batchable: Callable | None = None  # batchable(config) -> whether this config's seeds can train as one population


def rl_agent(name: str, config_cls: type, module, summary: str) -> AgentSpec:
    """An RL agent whose module defines train, load_policy and check_spaces."""
    check = module.check_spaces
    if "agent" in inspect.signature(check).parameters:  # one module, several agents: without a config it needs the name
        check = functools.partial(check, agent=name)
    return AgentSpec(name, config_cls, module.train, module.load_policy, check, summary,
                     train_population=getattr(module, "train_population", None),
                     batchable=getattr(module, "batchable", None))


AGENTS: dict[str, AgentSpec] = {spec.name: spec for spec in (
    rl_agent("dqn", dqn.DQNConfig, dqn, "DQN with double, dueling, n-step and prioritized-replay switches"),
    rl_agent("reinforce", pg.ReinforceConfig, pg, "REINFORCE: Monte-Carlo policy gradient, optional value baseline"),
    rl_agent("a2c", pg.A2CConfig, pg, "A2C: synchronous advantage actor-critic, n-step GAE"),
    rl_agent("ppo", pg.PPOConfig, pg, "PPO: clipped surrogate, GAE, minibatch epochs; discrete and continuous actions"),
    rl_agent("sac", sac_td3.SACConfig, sac_td3,
             "SAC: soft actor-critic with automatic entropy tuning, twin critics (continuous actions)"),
    rl_agent("td3", sac_td3.TD3Config, sac_td3,
             "TD3: twin delayed DDPG, target policy smoothing (continuous actions)"),
    AgentSpec("supervised", SupervisedConfig, None, None, None,
              "classifiers built from the same trunk and head classes (mnist, fashion-mnist; nets mlp, cnn) — "
              "trained with `rlsuite supervised`", kind="supervised"),
)}


def agent_names(kind: str | None = "rl") -> list[str]:
    return [name for name, spec in AGENTS.items() if kind is None or spec.kind == kind]


def get_agent(name: str, kind: str | None = None) -> AgentSpec:
    if name not in AGENTS:
        raise UserError(f"unknown agent '{name}'{close_matches(name, AGENTS)}; available: {', '.join(AGENTS)}")
    spec = AGENTS[name]
    if kind == "rl" and spec.kind != kind:
        raise UserError(f"'{name}' is not an RL agent; train it with `rlsuite {name}` (see --help)")
    if kind is not None and spec.kind != kind:
        raise UserError(f"'{name}' is an {spec.kind} agent, not a {kind} one")
    return spec
