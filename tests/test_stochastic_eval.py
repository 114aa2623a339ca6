"""eval_deterministic: false evaluates sampled actions, from the run's own seed, and says so wherever the result
goes (summary.json, rlsuite eval, compare's report); the protocol's deterministic policy stays the default."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from conftest import TINY_DQN
from rlsuite import runs
from rlsuite.config.schema import Schedule


def test_pg_sampling_policy_samples_the_distribution_reproducibly():
    from rlsuite.agents.pg import PPOConfig, build_actor_critic, deterministic_policy
    from rlsuite.learn.normalization import ObsNormalizer

    torch.manual_seed(0)
    space = gym.spaces.Discrete(3)
    model = build_actor_critic(PPOConfig(hidden=(8,)), gym.spaces.Box(-1, 1, (2,)), space)
    with torch.no_grad():  # probabilities 0.7, 0.2, 0.1 whatever the observation
        head = model["actor"][1].logits
        head.weight.zero_()
        head.bias.copy_(torch.log(torch.tensor([0.7, 0.2, 0.1])))
    norm = ObsNormalizer((2,), False)
    obs = np.zeros((4000, 2), np.float32)
    greedy = deterministic_policy(model, norm, space, "cpu")(obs)
    sampled = deterministic_policy(model, norm, space, "cpu", sample_seed=5)(obs)
    assert (greedy == 0).all()
    np.testing.assert_allclose(np.bincount(sampled, minlength=3) / len(obs), [0.7, 0.2, 0.1], atol=0.03)
    assert np.array_equal(sampled, deterministic_policy(model, norm, space, "cpu", sample_seed=5)(obs))
    assert not np.array_equal(sampled, deterministic_policy(model, norm, space, "cpu", sample_seed=6)(obs))


def test_dqn_sampling_policy_is_epsilon_greedy_at_the_final_epsilon():
    from rlsuite.agents.dqn import DQNConfig, greedy_policy

    q = torch.nn.Linear(2, 4)
    with torch.no_grad():
        q.weight.zero_()
        q.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 0.0]))  # greedy action 1
    cfg = DQNConfig(epsilon=Schedule(1.0, 0.2, 0.5))
    actions = greedy_policy(q, "cpu", cfg, sample_seed=3)(np.zeros((8000, 2), np.float32))
    # ε = 0.2: random 20% of the time, uniform over 4 actions, so action 1 with 0.8 + 0.05
    assert np.mean(actions == 1) == pytest.approx(0.85, abs=0.02)
    assert (greedy_policy(q, "cpu")(np.zeros((10, 2), np.float32)) == 1).all()


@pytest.mark.parametrize("agent, env_id, overrides", [
    ("dqn", "CartPole-v1", TINY_DQN),
    ("ppo", "Pendulum-v1", {"n_steps": "64", "num_envs": "2", "batch_size": "32", "eval_every": "256",
                            "eval_episodes": "2", "final_eval_episodes": "2"}),
    ("sac", "Pendulum-v1", {"learning_starts": "100", "batch_size": "16", "hidden": "16,16", "eval_every": "256",
                            "eval_episodes": "1", "final_eval_episodes": "2"}),
    ("td3", "Pendulum-v1", {"learning_starts": "100", "batch_size": "16", "hidden": "16,16", "eval_every": "256",
                            "eval_episodes": "1", "final_eval_episodes": "2"}),
])
def test_a_stochastic_evaluation_is_recorded_and_re_evaluated_as_such(tmp_path, agent, env_id, overrides):
    stochastic = runs.train(agent, env_id, seed=1, steps=600 if agent == "dqn" else 512,
                            overrides={**overrides, "eval_deterministic": "false"}, out=tmp_path, progress=False)
    assert stochastic["final_eval"]["deterministic"] is False
    again = runs.evaluate_run(stochastic["run_dir"], episodes=stochastic["final_eval"]["episodes"])
    assert again["deterministic"] is False and again["mean"] == pytest.approx(stochastic["final_eval"]["mean"])
    policy = runs.load_policy(stochastic["run_dir"])
    obs = np.zeros(policy.obs_shape, np.float32)
    assert policy.predict(obs, deterministic=False).shape == policy.predict(obs).shape


def test_predict_takes_a_boolean_and_the_default_stays_deterministic(tiny_run):
    from rlsuite.core.errors import UserError

    policy = runs.load_policy(tiny_run)
    obs = np.zeros((50, 4), np.float32)
    assert np.array_equal(policy.predict(obs), policy.predict(obs, deterministic=True))
    with pytest.raises(UserError, match="deterministic must be True or False"):
        policy.predict(obs, deterministic="no")
    assert runs.evaluate_run(tiny_run, episodes=2)["deterministic"] is True
