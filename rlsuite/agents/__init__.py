"""Agent registry: name -> config class, train function, policy loader, evaluation.

Every kind of run directory goes through it, the supervised classifiers included, so commands that
take a run directory (eval, list, resume) never special-case one kind."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from rlsuite.errors import UserError, close_matches


@dataclass(frozen=True)
class AgentSpec:
    name: str
    config_cls: type
    train: Callable | None  # train(config, run) -> summary dict (None: trained by its own command)
    load_policy: Callable | None  # load_policy(config, (obs_space, action_space), state, device) -> act
    check_spaces: Callable | None  # check_spaces(obs_space, action_space, config) raises UserError if unsupported
    summary: str
    evaluate: Callable  # evaluate(run_dir, episodes=, seed=, device=) -> result dict
    describe: Callable  # describe(result) -> the one line `rlsuite eval` prints
    kind: str = "rl"  # rl | supervised


def _rl_eval(run_dir, episodes=None, seed=None, device="auto") -> dict:
    from rlsuite.runs import evaluate_run

    return evaluate_run(run_dir, episodes=episodes, seed=seed, device=device)


def _rl_line(r: dict) -> str:
    who = "" if r.get("implementation", "rlsuite") == "rlsuite" else f"{r['implementation']} "
    return (f"{who}{r['agent']} on {r['env_id']} at step {r['step']:,}: {r['mean']:.1f} ± {r['std']:.1f} "
            f"over {r['episodes']} episodes (seed {r['seed']})")


def _supervised_eval(run_dir, episodes=None, seed=None, device="auto") -> dict:
    from rlsuite.supervised import evaluate_supervised_run

    if episodes is not None or seed is not None:
        raise UserError("--episodes and --seed apply to RL runs; a supervised run is evaluated on its test set")
    return evaluate_supervised_run(run_dir, device=device)


def _supervised_line(r: dict) -> str:
    return f"{r['net']} on {r['dataset']}: test accuracy {r['test_acc']:.2%} on {r['test_images']:,} images"


def _registry() -> dict[str, AgentSpec]:
    from rlsuite.agents import dqn, pg, sac_td3
    from rlsuite.supervised import SupervisedConfig

    def rl(name, config_cls, module, summary):
        check = module.check_spaces
        if module is sac_td3:  # one module, two agents: without a config (baseline) it needs the name for its errors
            check = functools.partial(check, agent=name)
        return AgentSpec(name, config_cls, module.train, module.load_policy, check, summary, _rl_eval, _rl_line)

    return {
        "dqn": rl("dqn", dqn.DQNConfig, dqn, "DQN with double, dueling, n-step and prioritized-replay switches"),
        "reinforce": rl("reinforce", pg.ReinforceConfig, pg, "REINFORCE: Monte-Carlo policy gradient, optional value baseline"),
        "a2c": rl("a2c", pg.A2CConfig, pg, "A2C: synchronous advantage actor-critic, n-step GAE"),
        "ppo": rl("ppo", pg.PPOConfig, pg,
                  "PPO: clipped surrogate, GAE, minibatch epochs; discrete and continuous actions"),
        "sac": rl("sac", sac_td3.SACConfig, sac_td3,
                  "SAC: soft actor-critic with automatic entropy tuning, twin critics (continuous actions)"),
        "td3": rl("td3", sac_td3.TD3Config, sac_td3,
                  "TD3: twin delayed DDPG, target policy smoothing (continuous actions)"),
        "supervised": AgentSpec("supervised", SupervisedConfig, None, None, None,
                                "classifiers built from the same trunk and head classes (mnist, fashion-mnist; "
                                "nets mlp, cnn) — trained with `rlsuite supervised`",
                                _supervised_eval, _supervised_line, kind="supervised"),
    }


def agent_names(kind: str | None = "rl") -> list[str]:
    return [name for name, spec in _registry().items() if kind is None or spec.kind == kind]


def get_agent(name: str, kind: str | None = None) -> AgentSpec:
    registry = _registry()
    if name not in registry:
        raise UserError(f"unknown agent '{name}'{close_matches(name, registry)}; available: {', '.join(registry)}")
    spec = registry[name]
    if kind is not None and spec.kind != kind:
        raise UserError(f"'{name}' is not an RL agent; train it with `rlsuite {name}` (see --help)")
    return spec
