"""Wiring checked against references: normalisation against numpy, PPO's value clipping and target-KL
stop, evaluate()'s masking of finished episodes, the card resolution order, learning_starts' random
policy, PPO's logged losses over every epoch."""

import numpy as np
import pytest
import torch

import rlsuite
from rlsuite.learn.normalization import ObsNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    rms = RunningMeanStd((4,), eps=0.0)
    for chunk in np.array_split(data, 17):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-10)
    assert rms.count == 1000


def test_obs_normalizer_freezes_and_restores():
    rng = np.random.default_rng(1)
    norm = ObsNormalizer((3,), enabled=True)
    batch = rng.normal(5.0, 3.0, size=(64, 3))
    out = norm(batch, update=True)
    ref = np.clip((batch - norm.rms.mean) / np.sqrt(norm.rms.var + 1e-8), -10, 10)
    np.testing.assert_allclose(out, ref.astype(np.float32), rtol=1e-6)
    frozen = norm.rms.state_dict()
    norm(rng.normal(size=(64, 3)))  # update=False (evaluation): the statistics stay
    assert norm.rms.state_dict() == frozen
    other = ObsNormalizer((3,), enabled=True)
    other.rms.load_state_dict(frozen)
    np.testing.assert_array_equal(other(batch), norm(batch))


def test_reward_scaler_divides_by_the_return_std():
    """By hand, not from the scaler's own statistics: γ = 0.5, two envs, env 1's episode ends at step 1.
    Discounted returns seen: step 1 [1, 2] (env 1 then restarts from 0), step 2 [1.5, 2], step 3 [4.75, -1].
    The running variance starts from a prior of mean 0, variance 1 and weight 1e-4 (as SB3's VecNormalize)."""
    scaler = RewardScaler(num_envs=2, gamma=0.5, enabled=True)
    scaler(np.array([1.0, 2.0]), np.array([False, True]))
    scaler(np.array([1.0, 2.0]), np.array([False, False]))
    out = scaler(np.array([4.0, -2.0]), np.array([False, False]))
    seen = np.array([1.0, 2.0, 1.5, 2.0, 4.75, -1.0])
    prior = 1e-4
    mean = seen.sum() / (len(seen) + prior)
    var = (prior * (1.0 + mean**2) + ((seen - mean) ** 2).sum()) / (len(seen) + prior)
    assert var == pytest.approx(2.8837, abs=1e-4) and var == pytest.approx(np.var(seen), abs=0.01)  # the prior weighs little
    np.testing.assert_allclose(out, np.array([4.0, -2.0]) / np.sqrt(var + 1e-8), rtol=1e-9)
    clipped = RewardScaler(num_envs=1, gamma=0.5, enabled=True, clip=0.5)
    assert clipped(np.array([3.0]), np.array([False]))[0] == 0.5  # 3 / sqrt(var ≈ 1e-4 prior-weighted) clipped
    assert RewardScaler(num_envs=1, gamma=0.5, enabled=False)(np.array([3.0]), np.array([False]))[0] == 3.0


def test_ppo_value_clipping_and_target_kl():
    from rlsuite.agents.pg import PPOConfig, build_actor_critic, ppo_update
    import gymnasium as gym

    torch.manual_seed(0)
    obs_space, act_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)
    cfg = PPOConfig(hidden=(8,), n_epochs=5, batch_size=8, clip_range_vf=0.1, target_kl=None, lr=rlsuite.config.schema.Schedule(0.0))
    model = build_actor_critic(cfg, obs_space, act_space)
    n = 16
    obs = torch.randn(n, 3)
    with torch.no_grad():
        dist = model["actor"](obs)
        actions = dist.sample()
        logp = dist.log_prob(actions)
        values = model["critic"](obs)
    batch = {"obs": obs, "actions": actions, "logprobs": logp, "values": values,
             "advantages": torch.randn(n), "returns": values + 5.0}  # returns far beyond the clip
    # the update takes a population (a leading member axis): here one member
    from rlsuite.learn.nets import stack_members
    from rlsuite.learn.optim import MemberDivergenceGuard

    model = stack_members([model])
    batch = {k: v[None] for k, v in batch.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every epoch sees the same network

    def update():
        out = ppo_update(model, opt, batch, cfg, 0.0, [np.random.default_rng(0)], MemberDivergenceGuard(1), torch.ones(1))
        return {k: float(v[0]) for k, v in out.items()}

    stats = update()
    # clipped values can move 0.1 at most: the loss is (5 - 0)^2 (the clip is around the old values,
    # which the unchanged network reproduces), whatever the raw values would be
    assert stats["value_loss"] == pytest.approx(25.0, rel=1e-5)
    assert stats["epochs"] == 5 and stats["kl_stop"] == 0.0
    # every minibatch of every epoch is in the logged mean: returns off by 0, 1, ..., 15 give minibatch
    # value losses that differ; with lr 0 their mean over all minibatches is the mean squared offset
    # (unclipped), which the last or the first minibatch alone would not give
    cfg.clip_range_vf = None
    batch["returns"] = (values + torch.arange(n, dtype=torch.float32))[None]
    stats = update()
    assert stats["value_loss"] == pytest.approx(float((torch.arange(n, dtype=torch.float32) ** 2).mean()), rel=1e-5)
    # target-KL: a policy already far from the one that collected the rollout stops in the first epoch,
    # and its diagnostics are still logged
    batch["logprobs"] = (logp - 2.0)[None]
    cfg.target_kl = 0.01
    stats = update()
    assert stats["epochs"] == 1 and stats["kl_stop"] == 1.0 and stats["approx_kl"] > 0.015


def test_evaluate_masks_rewards_after_an_episode_ends():
    from rlsuite.config.schema import EnvCard
    from rlsuite.run.evaluation import evaluate

    # CartPole pushed always left ends within ~10 steps; each of the 4 episodes is counted once, rewards
    # after its end (the sub-env restarts) are masked: every return equals that episode's length
    returns = evaluate(lambda obs: np.zeros(len(obs), np.int64), EnvCard("CartPole-v1"), 4, seed=0)
    import gymnasium as gym

    lengths = []
    for i in range(4):
        env = gym.make("CartPole-v1")
        env.reset(seed=i)
        t, done = 0, False
        while not done:
            _, _, term, trunc, _ = env.step(0)
            t, done = t + 1, term or trunc
        lengths.append(t)
    np.testing.assert_array_equal(returns, lengths)


def test_card_resolution_order(tmp_path, monkeypatch):
    from rlsuite.config import cards
    from rlsuite.agents.dqn import DQNConfig

    (tmp_path / "agents").mkdir()
    (tmp_path / "envs").mkdir()
    (tmp_path / "agents" / "dqn.yaml").write_text(
        "agent: dqn\ndefault: {batch_size: 11, eval_every: 111, gamma: 0.5, hidden: [7]}\n"
        "envs:\n  CartPole-v1: {gamma: 0.6, eval_every: 333}\n")
    (tmp_path / "envs" / "CartPole-v1.yaml").write_text("id: CartPole-v1\neval_every: 222\neval_episodes: 3\n")
    monkeypatch.setattr(cards, "cards_root", lambda: tmp_path)
    cfg, _ = cards.resolve("dqn", DQNConfig, "CartPole-v1", {"gamma": "0.7"})
    assert cfg.lr.start == DQNConfig().lr.start  # dataclass default
    assert cfg.batch_size == 11 and cfg.hidden == (7,)  # card default
    assert cfg.eval_episodes == 3  # env card
    assert cfg.eval_every == 333  # the card's env entry beats the env card and the default
    assert cfg.gamma == 0.7  # --set beats everything
    other, _ = cards.resolve("dqn", DQNConfig, "Acrobot-v1")
    assert other.gamma == 0.5 and other.eval_every == 111


def test_every_card_entry_resolves_to_a_valid_config():
    """Each agent card's entry for a named env (and its baseline section's envs) gives a config that passes
    validation: `rlsuite train AGENT ENV` must not stop at the card. (PPO's MountainCarContinuous entry had the
    zoo's batch 256 over a rollout of 8, which SB3 shrinks silently and rlsuite rejects.)"""
    import yaml

    from rlsuite.registry import agent_names, get_agent
    from rlsuite.config.cards import agent_card_path, resolve

    checked = 0
    for agent in agent_names():
        card = yaml.safe_load(agent_card_path(agent).read_text())
        for env_id in sorted(set(card.get("envs") or {}) | set(card.get("baseline") or {})):
            if "*" in env_id:  # a pattern (ALE/*): its games are covered by the pixel tests
                continue
            resolve(agent, get_agent(agent).config_cls, env_id)[0].validate()
            checked += 1
    assert checked >= 25


def test_learning_starts_acts_uniformly_at_random(tmp_path, monkeypatch):
    """Before learning_starts the greedy network is never asked (SB3: uniform random actions)."""
    from rlsuite.registry import dqn

    calls = []
    real = dqn.greedy_policy

    def spy(q, device, *args):
        act = real(q, device, *args)

        def wrapped(obs):
            calls.append(len(obs))
            return act(obs)

        return wrapped

    monkeypatch.setattr(dqn, "greedy_policy", spy)
    rlsuite.train("dqn", "CartPole-v1", steps=300, overrides={"learning_starts": "300", "eval_every": "100000",
                                                              "final_eval_episodes": "2", "epsilon": "0.0"},
                  out=tmp_path)
    # ε = 0 would act greedily at every training step (batches of 1 obs, one env); only the final
    # evaluation asks the network (batches of 2, its two episodes)
    assert calls and 1 not in calls
