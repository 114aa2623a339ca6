"""Time limits vs terminal states through every agent (the SB3-style check): on a never-terminating
env cut by a TimeLimit with reward 1 the learned value must be near 1/(1-γ) (bootstrapping at the time
limit), not near the mean truncated return; on an env that truly terminates it must be near the finite
return. The two values differ by far more than the tolerance, so a wrong bootstrap fails the test."""

from pathlib import Path

import numpy as np
import pytest
import torch

import toy_envs  # noqa: F401 - registers the toy ids
from rlsuite import runs
from rlsuite.run.checkpoint import load_checkpoint

GAMMA = 0.9
COMMON = {"gamma": str(GAMMA), "hidden": "32,32", "eval_every": "100000", "eval_episodes": "1",
          "final_eval_episodes": "1"}
CONFIGS = {
    "dqn": {**COMMON, "learning_starts": "200", "train_freq": "1", "gradient_steps": "1", "lr": "1e-3",
            "target_update_interval": "100", "batch_size": "32", "buffer_size": "5000", "max_grad_norm": "none",
            "loss": "mse"},
    # Rollouts of 40 steps hold two whole 20-step episodes: every return passes through a time limit, so a
    # wrong bootstrap there cannot hide behind the rollout-end bootstrap
    "a2c": {**COMMON, "num_envs": "4", "n_steps": "40", "lr": "3e-3", "gae_lambda": "1.0", "normalize_advantage": "false"},
    "ppo": {**COMMON, "num_envs": "4", "n_steps": "40", "batch_size": "40", "n_epochs": "4", "lr": "3e-3"},
    # REINFORCE's critic (its baseline) is trained on the Monte-Carlo returns, which bootstrap from it at a
    # time limit: the same fixed point, 1/(1-γ), only if that bootstrap is right
    "reinforce": {**COMMON, "num_envs": "4", "n_steps": "40", "lr": "1e-2"},
    # n-step returns and prioritized replay take other paths to their targets: each must bootstrap there too
    "dqn-nstep": {**COMMON, "learning_starts": "200", "train_freq": "1", "gradient_steps": "1", "lr": "1e-3",
                  "target_update_interval": "100", "batch_size": "32", "buffer_size": "5000", "max_grad_norm": "none",
                  "loss": "mse", "n_step": "3"},
    "dqn-per": {**COMMON, "learning_starts": "200", "train_freq": "1", "gradient_steps": "1", "lr": "1e-3",
                "target_update_interval": "100", "batch_size": "32", "buffer_size": "5000", "max_grad_norm": "none",
                "loss": "mse", "prioritized": "true"},
    # SAC without its entropy bonus (ent_coef 0), so its soft Q is the plain one; fast targets (tau 0.1)
    "sac": {**COMMON, "learning_starts": "100", "batch_size": "32", "buffer_size": "5000", "lr": "1e-3", "tau": "0.1",
            "ent_coef": "0"},
    "td3": {**COMMON, "learning_starts": "100", "batch_size": "32", "buffer_size": "5000", "lr": "1e-3", "tau": "0.1"},
    "ppo-continuous": {**COMMON, "num_envs": "4", "n_steps": "40", "batch_size": "40", "n_epochs": "4", "lr": "3e-3"},
}
AGENT = {"dqn-nstep": "dqn", "dqn-per": "dqn", "ppo-continuous": "ppo"}
CONTINUOUS = ("sac", "td3", "ppo-continuous")


def learned_value(run_dir: Path, agent: str, obs: np.ndarray) -> float:
    """max_a Q(obs, a) for DQN, V(obs) for the actor-critics, min_k Q_k(obs, μ(obs)) for SAC and TD3, from the
    run's checkpoint."""
    spec, config, card, _ = runs.load_run(run_dir)
    state = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["state"]
    x = torch.as_tensor(obs[None])
    with torch.no_grad():
        if agent in ("sac", "td3"):
            from rlsuite.agents.sac_td3 import build_actor, build_critics

            actor, critics = build_actor(config, 2, 1), build_critics(config, 2, 1)
            actor.load_state_dict(state["actor"])
            critics.load_state_dict(state["critics"])
            action = actor[1].mode(actor[0](x)) if agent == "sac" else actor(x)
            return float(critics(torch.cat([x, action], -1)).min())
        if agent == "dqn":
            from rlsuite.agents.dqn import build_q_network
            from rlsuite.envs.make import make_env

            env = make_env(card)
            q = build_q_network(config, env.observation_space, 2)
            q.load_state_dict(state["q"])
            return float(q(x).max())
        from rlsuite.agents.pg import build_actor_critic
        from rlsuite.envs.make import make_env

        env = make_env(card)
        model = build_actor_critic(config, env.observation_space, env.action_space)
        model.load_state_dict(state["model"])
        return float(model["critic"](x)[0])


@pytest.mark.parametrize("variant, steps", [("dqn", 3000), ("a2c", 6000), ("ppo", 6000), ("reinforce", 16000),
                                            ("dqn-nstep", 3000), ("dqn-per", 3000), ("sac", 2000), ("td3", 2000),
                                            ("ppo-continuous", 6000)])
def test_time_limit_bootstraps_to_the_infinite_horizon_value(tmp_path, variant, steps):
    agent = AGENT.get(variant, variant)
    env_id = "toy_envs:ConstantRewardContinuous-v0" if variant in CONTINUOUS else "toy_envs:ConstantReward-v0"
    summary = runs.train(agent, env_id, steps=steps, overrides=dict(CONFIGS[variant]), out=tmp_path, progress=False)
    value = learned_value(summary["run_dir"], agent, np.array([1.0, 0.0], np.float32))
    # 1/(1-γ) = 10; treating the limit as terminal would give the mean truncated return, about 6.05
    assert value == pytest.approx(1 / (1 - GAMMA), abs=1.0), value


@pytest.mark.parametrize("agent, steps", [("dqn", 3000), ("a2c", 6000), ("ppo", 6000)])
def test_termination_gives_the_finite_return(tmp_path, agent, steps):
    summary = runs.train(agent, "toy_envs:Countdown-v0", steps=steps, overrides=dict(CONFIGS[agent]),
                         out=tmp_path, progress=False)
    value = learned_value(summary["run_dir"], agent, np.eye(6, dtype=np.float32)[0])
    assert value == pytest.approx(sum(GAMMA**k for k in range(5)), abs=0.4), value  # 4.0951


def test_reinforce_returns_bootstrap_only_at_time_limits():
    """REINFORCE's Monte-Carlo returns through its episode carry: a time limit adds γ V(final obs) (here
    V = 10), so every step of a never-ending episode is worth 10; the agent end to end is tested above."""
    from rlsuite.learn.rollout import EpisodeCarry

    carry = EpisodeCarry(1, (1,), (), np.int64)
    T = 20
    rewards = np.ones((T, 1), np.float32)
    trunc = np.zeros((T, 1), bool)
    trunc[-1] = True
    tv = np.zeros((T, 1), np.float32)
    tv[-1] = 10.0  # V(final obs) = 1/(1-γ): the value of going on
    out = carry.add(np.zeros((T, 1, 1), np.float32), np.zeros((T, 1), np.int64), rewards, np.zeros((T, 1), bool),
                    trunc, tv, GAMMA)
    np.testing.assert_allclose(out["returns"], 10.0, rtol=1e-5)  # every step: 1 + γ·10 = 10
