"""Making envs: the vector env's episode statistics are the env's own, with same-step autoreset."""

import numpy as np

from rlsuite.config.cards import load_env_card
from rlsuite.envs.make import episode_stats, make_vector_env


def test_logged_episode_lengths_and_returns_are_the_envs_own():
    # CartPole pays 1 per step, so an episode's return is its length. With same-step autoreset the step that
    # ends one episode also starts the next: a statistics wrapper that mishandles it (gymnasium before 1.4)
    # loses the first step and reward of every episode after the first.
    envs = make_vector_env(load_env_card("CartPole-v1"), 3)
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    counted, returns, logged = np.zeros(3, int), np.zeros(3), {0: [], 1: [], 2: []}
    truth = {0: [], 1: [], 2: []}
    for _ in range(600):
        _, rewards, terminated, truncated, info = envs.step(rng.integers(2, size=3))
        counted += 1
        returns += rewards
        for i in np.flatnonzero(terminated | truncated):
            truth[i].append((float(returns[i]), int(counted[i])))
            counted[i], returns[i] = 0, 0.0
        for i, episode_return, length in episode_stats(info):
            logged[i].append((episode_return, length))
    envs.close()
    assert all(len(truth[i]) >= 10 for i in truth)  # many episodes ended, the later ones are the test
    assert logged == truth
    assert all(r == length for episodes in logged.values() for r, length in episodes)


def test_frame_stacking_holds_on_every_vectorization_path(monkeypatch):
    """Before: the native path ignored frame_stack, so training saw single frames while evaluation stacked them."""
    import gymnasium as gym

    from rlsuite.config.schema import EnvCard
    from rlsuite.envs import make as make_module
    from rlsuite.envs.make import make_env, make_vector_env

    real = gym.make_vec

    def native_same_step(env_id, num_envs, vectorization_mode=None, **kwargs):  # a native vector env that autoresets
        return real(env_id, num_envs, vectorization_mode="sync",  # in the same step, as rlsuite needs
                    vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}, **kwargs)

    monkeypatch.setattr(make_module.gym, "make_vec", native_same_step)

    single = make_env(EnvCard(id="CartPole-v1", frame_stack=3))
    assert single.observation_space.shape == (3, 4)
    single.close()
    for vectorization in ("sync", "async", "native"):
        envs = make_vector_env(EnvCard(id="CartPole-v1", frame_stack=3, vectorization=vectorization), 2)
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 3, 4), (vectorization, obs.shape)
        envs.close()


def test_evaluation_counts_the_episodes_it_cuts_at_its_step_limit():
    """Before: an episode still running at max_steps was counted as finished, its partial return as a whole one."""
    import numpy as np

    from rlsuite.config.schema import EnvCard
    from rlsuite.run.evaluation import evaluate_episodes

    def alternate(obs):
        return (np.arange(len(obs)) + int(obs[0, 0] * 1e6)) % 2

    returns, cut = evaluate_episodes(alternate, EnvCard(id="CartPole-v1"), 3, seed=0, max_steps=5)
    assert cut == 3 and list(returns) == [5.0, 5.0, 5.0]  # CartPole pays 1 a step: 5 steps, all cut
    returns, cut = evaluate_episodes(alternate, EnvCard(id="CartPole-v1"), 3, seed=0)
    assert cut == 0 and (returns < 500).all()
