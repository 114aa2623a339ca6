"""The torch classic-control envs are gymnasium's: same next state, reward, termination, truncation and
reset draws, over many random states and actions, and through the vector-env interface the agents use."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlsuite.core.errors import UserError
from rlsuite.envs.torch_classic import TORCH_ENVS, make_torch_vector_env

ENV_IDS = sorted(TORCH_ENVS)
# Random states, wider than the reset distributions so that walls, clips, wraps and terminations are hit.
STATE_RANGES = {
    "CartPole-v1": [(-3.0, 3.0), (-3.0, 3.0), (-0.3, 0.3), (-3.0, 3.0)],
    "Acrobot-v1": [(-np.pi, np.pi), (-np.pi, np.pi), (-4 * np.pi, 4 * np.pi), (-9 * np.pi, 9 * np.pi)],
    "MountainCar-v0": [(-1.2, 0.6), (-0.07, 0.07)],
    "MountainCarContinuous-v0": [(-1.2, 0.6), (-0.07, 0.07)],
    "Pendulum-v1": [(-3 * np.pi, 3 * np.pi), (-8.0, 8.0)],
}
# Same float64 equations; numpy's and torch's cos/sin may differ in the last bit, and gymnasium rounds some
# intermediate values to float32 (Pendulum's torque terms, MountainCarContinuous's state), so: close, not equal.
RTOL, ATOL = 1e-6, 1e-7


def random_actions(space, n, rng):
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, space.n, size=n)
    return rng.uniform(space.low * 1.5, space.high * 1.5, size=(n, *space.shape)).astype(np.float32)  # clipping too


def gym_state(env_id, env):
    return np.asarray(env.unwrapped.state, dtype=np.float64)


def torch_namespace(env):
    """The env as it runs on a GPU (torch tensors), here on the CPU."""
    env.xp = torch
    env.state = env.array(np.asarray(env.state))
    return env


def dynamics(tenv, states, actions):
    """One step of the env's dynamics from given states, in its namespace, as numpy."""
    xp = tenv.xp
    as_xp = (lambda a: a) if xp is np else torch.as_tensor
    s, r, t = tenv.dynamics(xp, as_xp(states), as_xp(actions))
    o = tenv.observe(xp, s)
    numpy = (lambda a: a) if xp is np else (lambda a: a.numpy())
    return numpy(s), numpy(r), numpy(t), numpy(o).astype(np.float32)


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_one_step_from_random_states_matches_gymnasium(env_id, namespace):
    rng = np.random.default_rng(0)
    n = 500
    ranges = np.array(STATE_RANGES[env_id])
    states = rng.uniform(ranges[:, 0], ranges[:, 1], size=(n, len(ranges)))
    if env_id == "MountainCar-v0" or env_id == "MountainCarContinuous-v0":
        states[: n // 10, 0] = -1.2  # on the left wall
        states[: n // 10, 1] = -0.01
        states[n // 10: n // 5, 0] = 0.499999  # right below the goal
    tenv = make_torch_vector_env(env_id, n, {})
    if namespace == "torch":
        torch_namespace(tenv)
    actions = random_actions(tenv.single_action_space, n, rng)
    next_state, reward, terminated, obs = dynamics(tenv, states, actions)

    env = gym.make(env_id)
    env.reset(seed=0)
    for i in range(n):
        if env_id == "CartPole-v1":
            env.unwrapped.steps_beyond_terminated = None  # each state is a fresh, live one
        env.unwrapped.state = states[i].copy() if env_id != "MountainCarContinuous-v0" else states[i].astype(np.float32)
        if env_id == "MountainCarContinuous-v0":  # gymnasium keeps this env's state in float32: start both there
            next_i, r_i, t_i, o_i = dynamics(tenv, states[i:i + 1].astype(np.float32).astype(np.float64), actions[i:i + 1])
            expected_state, expected_reward, expected_term, expected_obs = next_i[0], float(r_i[0]), bool(t_i[0]), o_i[0]
        else:
            expected_state, expected_reward, expected_term = next_state[i], float(reward[i]), bool(terminated[i])
            expected_obs = obs[i]
        o, r, term, trunc, _ = env.step(actions[i])
        np.testing.assert_allclose(gym_state(env_id, env), expected_state, rtol=RTOL, atol=ATOL, err_msg=f"{env_id} state {i}")
        np.testing.assert_allclose(o, expected_obs, rtol=RTOL, atol=ATOL, err_msg=f"{env_id} obs {i}")
        assert r == pytest.approx(expected_reward, rel=RTOL, abs=1e-6), (env_id, i)
        assert term == expected_term, (env_id, i, states[i])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_draws_are_gymnasiums_bit_for_bit(env_id):
    seeds = [3, 17, 123456, 2**31 - 1]
    tenv = make_torch_vector_env(env_id, len(seeds), {})
    obs, _ = tenv.reset(seed=seeds)
    for i, seed in enumerate(seeds):
        expected, _ = gym.make(env_id).reset(seed=seed)
        np.testing.assert_array_equal(obs[i], expected)
    # an int seeds sub-env i with seed + i, as gymnasium's vector envs do
    obs, _ = tenv.reset(seed=40)
    np.testing.assert_array_equal(obs[2], gym.make(env_id).reset(seed=42)[0])


@pytest.mark.parametrize("namespace", ["numpy", "torch"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_interface_matches_gymnasiums_vector_env(env_id, namespace):
    """The agents' view: SAME_STEP autoreset, final_obs, time-limit truncation, episode statistics."""
    n, steps = 4, 1200
    kwargs = {"max_episode_steps": 60} if env_id in ("Acrobot-v1", "MountainCarContinuous-v0") else {}
    genv = gym.wrappers.vector.RecordEpisodeStatistics(gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(n)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP))
    tenv = make_torch_vector_env(env_id, n, kwargs)
    if namespace == "torch":
        torch_namespace(tenv)
    assert tenv.single_observation_space == genv.single_observation_space
    assert tenv.single_action_space == genv.single_action_space
    go, _ = genv.reset(seed=7)
    to, _ = tenv.reset(seed=7)
    np.testing.assert_array_equal(go, to)
    rng = np.random.default_rng(1)
    episodes, truncations = 0, 0
    for t in range(steps):
        a = random_actions(tenv.single_action_space, n, rng)
        go, gr, gterm, gtrunc, ginfo = genv.step(a)
        to, tr, tterm, ttrunc, tinfo = tenv.step(a)
        np.testing.assert_array_equal(gterm, tterm, err_msg=f"step {t}")
        np.testing.assert_array_equal(gtrunc, ttrunc, err_msg=f"step {t}")
        np.testing.assert_allclose(gr, tr, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")
        ended = gterm | gtrunc
        if ended.any():
            np.testing.assert_array_equal(ginfo["_episode"], tinfo["_episode"])
            np.testing.assert_array_equal(ginfo["episode"]["l"][ended], tinfo["episode"]["l"][ended])
            np.testing.assert_allclose(ginfo["episode"]["r"][ended], tinfo["episode"]["r"][ended], rtol=1e-5)
            for i in np.flatnonzero(ended):
                np.testing.assert_allclose(ginfo["final_obs"][i], tinfo["final_obs"][i], rtol=1e-4, atol=1e-5)
            episodes += int(ended.sum())
            truncations += int((gtrunc & ~gterm).sum())
        # chaotic envs amplify last-bit differences over long episodes: compare closely, then resync
        np.testing.assert_allclose(go, to, rtol=1e-3, atol=1e-4, err_msg=f"{env_id} step {t}")
        tenv.state = tenv.array(np.stack([np.asarray(e.unwrapped.state, np.float64) for e in genv.env.envs]))
    assert episodes > 0 and truncations > 0 or env_id == "CartPole-v1" and episodes > 0


def test_exact_resume_from_state_dict():
    a = make_torch_vector_env("CartPole-v1", 3, {})
    a.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a.step(rng.integers(0, 2, 3))
    saved = a.state_dict()
    later = [a.step(np.array([1, 0, 1]))[0] for _ in range(40)]
    b = make_torch_vector_env("CartPole-v1", 3, {})
    b.load_state_dict(saved)
    again = [b.step(np.array([1, 0, 1]))[0] for _ in range(40)]
    np.testing.assert_array_equal(np.stack(later), np.stack(again))


def test_bad_arguments_and_unknown_env_are_one_line_errors():
    with pytest.raises(UserError, match="takes no argument"):
        make_torch_vector_env("CartPole-v1", 2, {"gravity": 3})
    with pytest.raises(UserError, match="no torch backend"):
        make_torch_vector_env("LunarLander-v3", 2, {})
    env = make_torch_vector_env("Pendulum-v1", 2, {"g": 9.81, "max_episode_steps": 5})
    env.reset(seed=0)
    for _ in range(4):
        assert not env.step(np.zeros((2, 1), np.float32))[3].any()
    assert env.step(np.zeros((2, 1), np.float32))[3].all()


def test_env_cards_choose_the_backend_and_the_cli_overrides_it(tmp_path):
    from click.testing import CliRunner

    from rlsuite.cli import main
    from rlsuite.config.cards import load_env_card
    from rlsuite.config.schema import EnvCard
    from rlsuite.envs.make import make_vector_env
    from rlsuite.envs.torch_classic import TorchClassicEnv

    for env_id in ENV_IDS:  # the classic-control cards run on the torch backend by default
        assert load_env_card(env_id).backend == "torch"
    assert isinstance(make_vector_env(EnvCard(id="CartPole-v1", backend="torch"), 2), TorchClassicEnv)
    assert not isinstance(make_vector_env(EnvCard(id="CartPole-v1"), 2), TorchClassicEnv)
    with pytest.raises(UserError, match="cannot apply the card's wrappers"):
        make_vector_env(EnvCard(id="CartPole-v1", backend="torch", wrappers=["ClipReward"]), 2)
    runner = CliRunner()
    args = ["train", "ppo", "CartPole-v1", "--steps", "256", "--set", "n_steps=16", "--set", "num_envs=2",
            "--set", "batch_size=16", "--out", str(tmp_path), "--quiet"]
    result = runner.invoke(main, args + ["--env-backend", "gymnasium"])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    assert "backend: gymnasium" in (run / "config.yaml").read_text()
    result = runner.invoke(main, ["train", "ppo", "LunarLander-v3", "--env-backend", "torch", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "no torch backend" in result.output and "Traceback" not in result.output


def test_torch_backend_on_an_env_without_one_says_so_where_the_envs_extra_is_missing(tmp_path):
    """The minimum-versions CI job has no Box2D: the torch backend's refusal must come before Box2D's. The check
    runs in a fresh interpreter, because once Box2D is imported (by an earlier test) hiding it changes nothing."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['Box2D'] = None\n"  # import Box2D now raises ImportError, as where it is missing
        "from click.testing import CliRunner\n"
        "from rlsuite.cli import main\n"
        f"r = CliRunner().invoke(main, ['train', 'ppo', 'LunarLander-v3', '--env-backend', 'torch', '--out', {str(tmp_path)!r}])\n"
        "print(r.exit_code); print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300).stdout
    code, _, output = out.partition("\n")
    assert code != "0" and "no torch backend" in output and "Traceback" not in output, out
