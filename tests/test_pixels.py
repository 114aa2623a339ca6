"""Image observations: the shared CNN, MinAtar and Atari env cards, frame-sharing DQN, EnvPool, videos."""

import dataclasses
import importlib.util
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from conftest import TINY_DQN, assert_one_line_error, metrics_without_wall
from rlsuite.learn import nets
from rlsuite import runs
from rlsuite.supervised import classifier as supervised
from rlsuite.config.cards import load_env_card
from rlsuite.run.checkpoint import load_checkpoint
from rlsuite.cli import main
from rlsuite.envs.make import make_env, make_vector_env, resolve_env_id
from rlsuite.core.errors import UserError
from rlsuite.learn.frame_replay import FrameReplayBuffer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("minatar") is None or importlib.util.find_spec("ale_py") is None,
                                reason="needs the atari and minatar extras")

# Pong cut at 800 frames (200 agent steps) so that evaluation games are short
SHORT_PONG = {"max_num_frames_per_episode": 800}
TINY_PIXEL_DQN = {"learning_starts": "100", "eval_every": "300", "eval_episodes": "1", "final_eval_episodes": "1",
                  "buffer_size": "400", "batch_size": "8", "train_freq": "4", "hidden": "32", "num_envs": "1",
                  "checkpoint_every": "200", "log_every": "100", "save_buffer": "true"}


def test_the_cnn_trunk_reads_its_layout_and_is_the_mnist_class():
    atari = nets.make_trunk((4, 84, 84), "auto", (512,), uint8=True)
    minatar = nets.make_trunk((10, 10, 7), "auto", (128,))
    assert type(atari) is type(minatar) is nets.CNN is supervised.CNN  # one class for RL and MNIST
    assert not atari.channels_last and minatar.channels_last
    assert [m.kernel_size for m in atari.convs if isinstance(m, torch.nn.Conv2d)] == [(8, 8), (4, 4), (3, 3)]  # Nature
    assert [m.kernel_size for m in minatar.convs if isinstance(m, torch.nn.Conv2d)] == [(3, 3)]  # MinAtar paper
    assert atari(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 512)
    assert minatar(torch.zeros(2, 10, 10, 7, dtype=torch.bool)).shape == (2, 128)  # bool frames converted inside
    assert isinstance(nets.make_trunk((8,), "auto", (64,)), nets.MLP)


def _preprocessed(game: str) -> gym.Env:
    """gymnasium's own standard Atari preprocessing of GAME, the reference for rlsuite's env cards."""
    return gym.wrappers.AtariPreprocessing(
        gym.make(game, frameskip=1, repeat_action_probability=0.25, full_action_space=False),
        noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)


def _assert_same_frames(ours: gym.Env, reference: gym.Env, seed: int, steps: int = 40) -> None:
    a, _ = ours.reset(seed=seed)
    b, _ = reference.reset(seed=seed)
    assert a.shape == (4, 84, 84) and a.dtype == np.uint8 and np.array_equal(a, b)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = int(rng.integers(ours.action_space.n))
        a, ra, *_ = ours.step(action)
        b, rb, *_ = reference.step(action)
        assert np.array_equal(a, b) and ra == rb


def test_atari_card_matches_gymnasium_preprocessing_and_keeps_training_wrappers_out_of_evaluation():
    card = load_env_card("ALE/Pong-v5")
    ours = make_env(card, training=False)
    resolve_env_id("ALE/Pong-v5")
    from rlsuite.envs.atari import FireReset

    reference = gym.wrappers.FrameStackObservation(FireReset(_preprocessed("ALE/Pong-v5")), 4)
    _assert_same_frames(ours, reference, seed=7)

    def chain(env):
        names = []
        while isinstance(env, gym.Wrapper):
            names.append(type(env).__name__)
            env = env.env
        return names

    assert {"EpisodicLife", "ClipReward"} <= set(chain(make_env(card, training=True)))
    assert not {"EpisodicLife", "ClipReward"} & set(chain(ours))  # evaluation: whole games, raw scores


def test_registering_minatar_happens_once():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Overriding environment MinAtar/... already in registry" would raise
        for _ in range(3):
            resolve_env_id("MinAtar/Breakout-v1")
            resolve_env_id("ALE/Pong-v5")


@pytest.mark.parametrize("agent", ["dqn", "ppo"])
def test_minatar_end_to_end_card_checkpoint_resume_eval_video(tmp_path, agent):
    small = {"dqn": ["--set", "learning_starts=200", "--set", "buffer_size=2000"],
             "ppo": ["--set", "num_envs=2", "--set", "n_steps=64", "--set", "batch_size=64"]}[agent]
    args = ["train", agent, "MinAtar/Breakout-v1", "--steps", "512", "--out", str(tmp_path), "--quiet",
            "--set", "eval_every=256", "--set", "eval_episodes=2", "--set", "final_eval_episodes=2", *small]
    result = CliRunner().invoke(main, args + ["--set", "checkpoint_every=256"])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env_card"]["id"] == "MinAtar/Breakout-v1" and config["config"]["hidden"] == [128]  # its card
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 512
    extended = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--steps", "1024", "--quiet"])
    assert extended.exit_code == 0, extended.output
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 1024
    evaluated = CliRunner().invoke(main, ["eval", str(run_dir), "--episodes", "2"])
    assert evaluated.exit_code == 0 and "MinAtar/Breakout-v1" in evaluated.output
    if importlib.util.find_spec("moviepy") is not None:
        filmed = CliRunner().invoke(main, ["eval", str(run_dir), "--video", str(tmp_path / "videos")])
        assert filmed.exit_code == 0, filmed.output
        assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1


def test_frame_sharing_dqn_resumes_on_atari_from_its_checkpointed_frames_and_weights(tmp_path):
    """Not exact: the emulator's state cannot be checkpointed, so the resumed run starts new episodes (the
    MinAtar test checks exactness where the env state can be saved)."""
    overrides = dict(TINY_PIXEL_DQN)
    kwargs = dict(steps=600, overrides=overrides, progress=False, env_kwargs=SHORT_PONG)
    straight = runs.train("dqn", "ALE/Pong-v5", seed=1, out=tmp_path / "a", **kwargs)
    stopped = runs.train("dqn", "ALE/Pong-v5", seed=1, out=tmp_path / "b", stop_at=300, **kwargs)
    state = load_checkpoint(Path(stopped["run_dir"]) / "checkpoints" / "last.pt")["state"]
    assert "frames" in state["buffer"]  # the frame-sharing memory, checkpointed with its frames
    resumed = runs.resume(stopped["run_dir"], progress=False)
    w1 = load_checkpoint(Path(straight["run_dir"]) / "checkpoints" / "last.pt")["state"]["q"]
    w2 = load_checkpoint(Path(resumed["run_dir"]) / "checkpoints" / "last.pt")["state"]["q"]
    # AsyncVectorEnv states cannot be checkpointed: the resumed run restarts its episodes, so only the
    # learning continues exactly; what must hold is that it trains on from the saved memory and weights
    assert resumed["status"] == "complete" and resumed["steps"] == straight["steps"] == 600
    assert set(w1) == set(w2)
    config = yaml.safe_load((Path(resumed["run_dir"]) / "config.yaml").read_text())
    assert config["env_card"]["make_kwargs"]["max_num_frames_per_episode"] == 800  # --env-kwargs recorded


def test_replay_memory_is_sized_before_anything_is_allocated(tmp_path):
    with pytest.raises(UserError, match=r"replay buffer of 1,000,000,000 transitions .* needs [\d.]+ GiB"):
        runs.train("dqn", "ALE/Pong-v5", steps=1000, overrides={"buffer_size": "1000000000"}, out=tmp_path,
                   progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_without_its_replay_memory_refills_before_learning(tmp_path):
    # save_buffer false (the Atari cards' setting): the resumed run must refill its memory before it learns,
    # not sample the one or two transitions of its new, empty memory over and over
    overrides = {"learning_starts": "200", "buffer_size": "2000", "eval_every": "400", "eval_episodes": "1",
                 "final_eval_episodes": "1", "hidden": "16,16", "save_buffer": "false", "checkpoint_every": "300",
                 "train_freq": "4", "gradient_steps": "1"}
    stopped = runs.train("dqn", "CartPole-v1", seed=0, steps=900, overrides=overrides, out=tmp_path, progress=False,
                         stop_at=300)
    state = load_checkpoint(Path(stopped["run_dir"]) / "checkpoints" / "last.pt")["state"]
    assert "buffer" not in state
    resumed = runs.resume(stopped["run_dir"], progress=False)
    assert resumed["status"] == "complete" and resumed["steps"] == 900
    updates = load_checkpoint(Path(stopped["run_dir"]) / "checkpoints" / "last.pt")["state"]["updates"]
    # refilled for learning_starts = 200 steps (300 -> 500), then one update every 4 steps: 500, 504, ..., 900
    assert updates - state["updates"] == (900 - 500) // 4 + 1


def test_env_kwargs_from_the_command_line(tmp_path):
    bad = CliRunner().invoke(main, ["train", "dqn", "ALE/Pong-v5", "--env-kwargs", "no_such_arg=1", "--steps", "10",
                                    "--out", str(tmp_path)])
    assert_one_line_error(bad, "ALE/Pong-v5 takes no argument 'no_such_arg'")
    assert_one_line_error(CliRunner().invoke(main, ["train", "dqn", "ALE/Pong-v5", "--env-kwargs", "oops"]),
                          "is not name=value")
    assert_one_line_error(CliRunner().invoke(main, ["train", "dqn", "ALE/Pong-v5", "--env-kwargs", "a=[1, 2]"]),
                          "one number, boolean or string")


@pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason="needs the envpool extra")
def test_envpool_has_gymnasiums_spaces_clipped_rewards_and_same_step_autoreset():
    """EnvPool's emulator is seeded its own way, so its frames are not gymnasium's from the same seed: what must
    match is the spaces, training's reward clipping and same-step autoreset with the final observation kept."""
    card = dataclasses.replace(load_env_card("ALE/Breakout-v5"), vectorization="envpool")
    envs = make_vector_env(card, 3)
    reference = make_vector_env(dataclasses.replace(card, vectorization="sync"), 3)
    assert envs.single_observation_space == reference.single_observation_space  # (4, 84, 84) uint8
    assert envs.single_action_space == reference.single_action_space
    obs, _ = envs.reset(seed=0)
    ended, episodes = 0, 0
    for _ in range(400):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert set(np.unique(reward)) <= {0.0, 1.0}  # clipped in training
        if (terminated | truncated).any():
            ended += 1
            for i in np.flatnonzero(terminated | truncated):
                assert info["_final_obs"][i] and info["final_obs"][i].shape == (4, 84, 84)
                # the env shows a new life's first stack at once (same-step autoreset)
                assert not np.array_equal(info["final_obs"][i], obs[i])
        episodes += int(info.get("_episode", np.zeros(3)).sum())
    assert ended > 0 and episodes > 0
    envs.close()
    reference.close()


def test_envpool_missing_or_misused_is_one_line(monkeypatch, tmp_path):
    card = dataclasses.replace(load_env_card("ALE/Breakout-v5"), vectorization="envpool")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "envpool" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'rlsuite\[envpool\]'"):
        make_vector_env(card, 2)
    monkeypatch.undo()
    with pytest.raises(UserError, match="envpool is for Atari"):
        make_vector_env(dataclasses.replace(load_env_card("MinAtar/Breakout-v1"), vectorization="envpool"), 2)


def test_video_needs_moviepy_and_rendering(tmp_path, tiny_run, monkeypatch):
    from rlsuite.envs import video

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moviepy" else real(name, *a))
    assert_one_line_error(CliRunner().invoke(main, ["eval", str(tiny_run), "--video", str(tmp_path / "v")]),
                          "pip install 'rlsuite[video]'")
    monkeypatch.undo()
    policy = runs.load_policy(tiny_run)
    no_render = dataclasses.replace(policy, env_card=dataclasses.replace(policy.env_card, id="CartPole-v1"))
    monkeypatch.setattr(gym.envs.classic_control.CartPoleEnv, "metadata", {"render_modes": []})
    with pytest.raises(UserError, match="cannot render frames"):
        video.record(no_render, tmp_path / "v", 1, 0)


def test_frame_memory_of_a_1m_atari_buffer_is_under_8_gb():
    from rlsuite.learn.frame_replay import frame_replay_bytes
    from rlsuite.learn.replay import naive_replay_bytes

    assert frame_replay_bytes(1_000_000, (4, 84, 84), 8, 1, False) < 8e9 < naive_replay_bytes(1_000_000, (4, 84, 84))
    buffer = FrameReplayBuffer(1000, (4, 84, 84), 1)
    assert buffer.frames.shape[1:] == (84, 84)


def test_vectorization_auto_is_resolved_before_the_run_records_it(monkeypatch):
    from rlsuite.runs import prepare

    expected = "envpool" if importlib.util.find_spec("envpool") else "async"
    assert load_env_card("ALE/Breakout-v5").vectorization == "auto"
    assert prepare("ppo", "ALE/Breakout-v5")[2].vectorization == expected
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "envpool" else real(name, *a))
    assert prepare("ppo", "ALE/Breakout-v5")[2].vectorization == "async"  # no EnvPool: gymnasium's, no error


def test_an_atari_game_without_a_card_gets_the_standard_preprocessing():
    """Freeway has no card: it gets the standard Atari chain, frame for frame gymnasium's AtariPreprocessing and
    frame stack; training adds episodic life and reward clipping, evaluation leaves them out; FireReset passes
    through, as Freeway has no FIRE action (the frames above equal the reference's without it)."""
    card = load_env_card("ALE/Freeway-v5")  # no envs/ALE__Freeway-v5.yaml
    ours = make_env(card, training=False)
    reference = gym.wrappers.FrameStackObservation(_preprocessed("ALE/Freeway-v5"), 4)
    _assert_same_frames(ours, reference, seed=3)
    ours.close()
    reference.close()
    training = make_env(card, training=True)
    assert {"EpisodicLife", "ClipReward"} <= set(_chain(training))
    assert not next(w for w in _wrappers(training) if type(w).__name__ == "FireReset").active
    assert not {"EpisodicLife", "ClipReward"} & set(_chain(make_env(card, training=False)))
    training.close()


def _wrappers(env) -> list:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


def _chain(env) -> list[str]:
    return [type(w).__name__ for w in _wrappers(env)]


def test_a_large_checkpoint_says_how_big_it_is(tmp_path, monkeypatch, capsys):
    from pathlib import Path as P

    real = P.stat

    class Big:
        def __init__(self, st):
            self.st_size, self.st_mode, self.st_mtime = 3 * 2**30, st.st_mode, st.st_mtime

    monkeypatch.setattr(P, "stat", lambda self, *a, **k: Big(real(self, *a, **k)) if self.name == "last.pt" else real(self, *a, **k))
    overrides = {"learning_starts": "100", "eval_every": "300", "eval_episodes": "1", "final_eval_episodes": "1",
                 "hidden": "8", "checkpoint_every": "100"}
    runs.train("dqn", "CartPole-v1", steps=300, overrides=overrides, out=tmp_path, progress=False)
    err = capsys.readouterr().err
    assert err.count("checkpoints are 3.0 GiB") == 1 and "save_buffer=false" in err


def test_compare_on_an_env_without_a_threshold_reports_scores_only(tmp_path):
    result = CliRunner().invoke(main, ["compare", "ppo", "MinAtar/Breakout-v1", "--seeds", "1", "--steps", "1024",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "No solve threshold" in result.output and "wall-to-solve" not in result.output
    assert "solved" not in result.output.split("No solve threshold")[0]  # no solve columns in the table


def test_env_kwargs_are_typed_and_checked_before_a_run_exists(tmp_path):
    from rlsuite.config.cards import parse_env_kwargs

    assert parse_env_kwargs(["sticky_action_prob=1e-3", "full_action_space=true"]) == \
        {"sticky_action_prob": 0.001, "full_action_space": True}  # YAML 1.1 reads 1e-3 as a string
    for bad, fragment in ((["full_action_space=maybe"], "give a true/false"),
                          (["repeat_action_probability=2"], "a probability must be a number in [0, 1]"),
                          (["render_mode=human"], "rlsuite eval RUN --video"),
                          (["sticky_action_prob=abc"], "give a number"),
                          (["repeat_action_prob=0"], "did you mean: repeat_action_probability")):
        env = "MinAtar/Breakout-v1" if "sticky" in bad[0] else "ALE/Pong-v5"
        args = ["train", "dqn", env, "--steps", "10", "--out", str(tmp_path), *sum((["--env-kwargs", b] for b in bad), [])]
        assert_one_line_error(CliRunner().invoke(main, args), fragment)
    assert not (tmp_path / "runs").exists()


def test_hyperparameters_are_the_same_on_both_sides_for_pixels():
    from rlsuite.experiments.compare import differences_from_zoo

    for agent in ("dqn", "ppo"):
        for env_id in ("MinAtar/Breakout-v1", "ALE/Pong-v5"):
            assert differences_from_zoo(agent, env_id) == {}, (agent, env_id)


def test_sb3_minatar_baseline_runs_rlsuites_cnn(tmp_path):
    from rlsuite.agents.dqn import DQNConfig, build_q_network
    from rlsuite.sb3.baseline import make_model
    from rlsuite.sb3.hyperparameters import baseline_hyperparameters
    from rlsuite.config.cards import resolve

    hp, _ = baseline_hyperparameters("dqn", "MinAtar/Breakout-v1")
    model = make_model("dqn", "MinAtar/Breakout-v1", hp, 0, "cpu", 1)
    config, card = resolve("dqn", DQNConfig, "MinAtar/Breakout-v1")
    env = make_env(card)
    ours = build_q_network(config, env.observation_space, int(env.action_space.n))
    theirs = model.policy.q_net
    assert isinstance(theirs.features_extractor.cnn, nets.CNN)
    shapes = lambda m: sorted(tuple(p.shape) for p in m.parameters())  # noqa: E731
    assert shapes(ours) == shapes(theirs)


def test_episodic_life_and_fire_reset_on_breakout():
    from rlsuite.envs.atari import EpisodicLife, FireReset

    resolve_env_id("ALE/Breakout-v5")
    base = gym.wrappers.AtariPreprocessing(gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0),
                                           noop_max=0)
    env = FireReset(EpisodicLife(base))
    env.reset(seed=3)
    ale = env.unwrapped.ale
    lives = ale.lives()
    frames_before = ale.getEpisodeFrameNumber()
    assert frames_before > 0  # FireReset pressed FIRE (and a move) after the reset
    terminated = False
    for _ in range(2000):
        _, _, terminated, truncated, _ = env.step(0)  # NOOP: the ball is lost, one life after another
        if terminated or truncated:
            break
    assert terminated and ale.lives() == lives - 1  # a lost life ends the learner's episode ...
    frame = ale.getEpisodeFrameNumber()
    env.reset()
    assert ale.lives() == lives - 1 and ale.getEpisodeFrameNumber() > frame  # ... but not the game


@pytest.mark.skipif(importlib.util.find_spec("envpool") is None, reason="needs the envpool extra")
def test_envpool_pads_a_new_lifes_stack_as_gymnasium_and_refuses_what_it_cannot_do():
    card = dataclasses.replace(load_env_card("ALE/Breakout-v5"), vectorization="envpool")
    envs = make_vector_env(card, 2)
    envs.reset(seed=0)
    for _ in range(500):
        obs, _, terminated, truncated, info = envs.step(envs.action_space.sample())
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            first = obs[ended[0]]
            assert all(np.array_equal(first[0], first[k]) for k in range(4))  # FrameStackObservation's padding
            break
    else:
        pytest.fail("no life lost in 500 random Breakout steps")
    envs.close()
    from rlsuite.envs.make import resolve_auto

    with pytest.raises(UserError, match="cannot take the env argument"):
        make_vector_env(dataclasses.replace(card, make_kwargs={**card.make_kwargs, "mode": 1}), 2)
    assert resolve_auto(dataclasses.replace(card, vectorization="auto", make_kwargs={"mode": 1})).vectorization == "async"
    assert resolve_auto(dataclasses.replace(load_env_card("MinAtar/Breakout-v1"), vectorization="auto")).vectorization == "async"


def test_frame_store_checkpoint_after_wrapping_and_a_mismatched_store():
    import test_frame_replay

    naive, framed = test_frame_replay.fill(3, True, steps=300, capacity=200)
    assert framed.written > framed.n_frames  # wrapped
    again = FrameReplayBuffer(200, (4, 5, 6), 3, 3, True)
    again.load_state_dict(framed.state_dict())
    rng = np.random.default_rng(0)
    idx, _ = again.sample_prioritized(64, 0.4, rng)
    a, b = naive.gather(idx), again.gather(idx)
    assert (a["obs"] == b["obs"]).all() and (a["next_obs"] == b["next_obs"]).all()
    with pytest.raises(UserError, match="frame store holds"):
        FrameReplayBuffer(200, (4, 5, 6), 8, 3, True).load_state_dict(framed.state_dict())


def test_minatar_runs_resume_exactly(tmp_path):
    # the games' state (positions, counters, their RandomState) is checkpointed and restored in place
    overrides = {"learning_starts": "100", "buffer_size": "2000", "batch_size": "16", "eval_every": "300",
                 "eval_episodes": "2", "final_eval_episodes": "2", "checkpoint_every": "1000", "log_every": "100"}
    kw = dict(seed=4, steps=700, overrides=overrides, progress=False)
    straight = runs.train("dqn", "MinAtar/Breakout-v1", out=tmp_path / "a", **kw)
    stopped = runs.train("dqn", "MinAtar/Breakout-v1", out=tmp_path / "b", stop_at=350, **kw)
    resumed = runs.resume(stopped["run_dir"], progress=False)

    assert metrics_without_wall(resumed["run_dir"]) == metrics_without_wall(straight["run_dir"])
    w1 = load_checkpoint(Path(straight["run_dir"]) / "checkpoints" / "last.pt")["state"]["q"]
    w2 = load_checkpoint(Path(resumed["run_dir"]) / "checkpoints" / "last.pt")["state"]["q"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_minatar_videos_show_the_game(tmp_path):
    pytest.importorskip("moviepy")
    import imageio

    from rlsuite.envs import video

    run = runs.train("dqn", "MinAtar/Breakout-v1", steps=300, overrides={"learning_starts": "100", "buffer_size": "500",
                     "eval_every": "300", "eval_episodes": "1", "final_eval_episodes": "1"}, out=tmp_path, progress=False)
    policy = runs.load_policy(run["run_dir"])
    first = video.record(policy, tmp_path / "v", 2, 0)
    again = video.record(policy, tmp_path / "v", 1, 0)
    assert len(first["videos"]) == 2 and len(again["videos"]) == 1  # only this call's files
    frames = np.stack(imageio.mimread(again["videos"][0], memtest=False))
    assert frames.shape[1] >= 160 and frames.max() > 0 and len(np.unique(frames)) > 2  # not a black 10x10 film


def test_compare_set_changes_both_sides_where_sb3_has_the_setting():
    from rlsuite.sb3.hyperparameters import sb3_overrides_for

    sb3, ours_only = sb3_overrides_for({"learning_starts": "500", "lr": "{linear: [1e-3, 0]}", "double": "true",
                                        "final_eval_episodes": "1"})
    assert sb3 == {"learning_starts": 500, "learning_rate": {"linear": [1e-3, 0]}, "final_eval_episodes": 1}
    assert ours_only == ["double"]


def test_a_run_films_every_nth_evaluation_and_resume_keeps_the_schedule(tmp_path):
    """video_every: one greedy episode into RUN/videos at every 2nd evaluation (steps 600 and 1200 here, on the
    evaluation schedule, so a resumed run films where an uninterrupted one would)."""
    pytest.importorskip("moviepy")
    overrides = {**TINY_DQN, "video_every": "2"}
    first = runs.train("dqn", "CartPole-v1", seed=0, steps=1200, overrides=overrides, out=tmp_path, progress=False,
                       stop_at=400)  # a counter restarted by the resume would film at 900: the schedule films at 1200
    run_dir = Path(first["run_dir"])
    assert not (run_dir / "videos").exists()
    runs.resume(run_dir, progress=False, stop_at=700)
    assert [p.name for p in sorted((run_dir / "videos").glob("*.mp4"))] == ["step600-episode-0.mp4"]
    runs.resume(run_dir, progress=False)
    assert [p.name for p in sorted((run_dir / "videos").glob("*.mp4"))] == ["step1200-episode-0.mp4",
                                                                          "step600-episode-0.mp4"]
    assert all(p.stat().st_size > 1000 for p in (run_dir / "videos").glob("*.mp4"))


def test_video_every_is_checked_before_a_run_starts(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moviepy" else real(name, *a))
    result = CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--set", "video_every=2", "--out", str(tmp_path)])
    assert_one_line_error(result, "pip install 'rlsuite[video]'")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run directory left
    assert_one_line_error(CliRunner().invoke(main, ["train", "dqn", "CartPole-v1", "--set", "video_every=0",
                                                    "--out", str(tmp_path)]), "video_every")


def test_filming_every_nth_evaluation_when_one_rollout_passes_several(tmp_path):
    """A PPO rollout (here 4 envs x 64 steps = 256) longer than eval_every (100) passes several evaluation
    points at once; filming must not depend on which of them the rollout ends after."""
    pytest.importorskip("moviepy")
    overrides = {"num_envs": "4", "n_steps": "64", "batch_size": "64", "eval_every": "100", "eval_episodes": "1",
                 "final_eval_episodes": "1", "hidden": "8", "video_every": "3"}
    run_dir = Path(runs.train("ppo", "CartPole-v1", seed=0, steps=1024, overrides=overrides, out=tmp_path,
                              progress=False)["run_dir"])
    # evaluations at 256 (points 100, 200), 512 (300..500), 768 (600, 700), 1024 (800..1000): every 3rd point
    # is 300, 600, 900, passed in the rollouts ending at 512, 768 and 1024
    assert sorted(p.name for p in (run_dir / "videos").glob("*.mp4")) == [
        "step1024-episode-0.mp4", "step512-episode-0.mp4", "step768-episode-0.mp4"]


@pytest.mark.parametrize("error,said", [(RuntimeError("ffmpeg writer broke"), "ffmpeg writer broke"),
                                        (RuntimeError(), "RuntimeError")])  # an error without a message too
def test_a_filming_failure_ends_the_videos_not_the_training(tmp_path, monkeypatch, capsys, error, said):
    from rlsuite.envs import video

    pytest.importorskip("moviepy")

    def broken(*a, **k):
        raise error

    monkeypatch.setattr(video, "record_episodes", broken)
    summary = runs.train("dqn", "CartPole-v1", seed=0, steps=900, overrides={**TINY_DQN, "video_every": "1"},
                         out=tmp_path, progress=False)
    assert summary["status"] == "complete"
    assert capsys.readouterr().err.count(f"no more videos in this run: {said}") == 1


def test_sb3_baselines_film_with_video_every(tmp_path):
    from rlsuite.sb3.baseline import train_baseline
    from rlsuite.sb3.hyperparameters import sb3_overrides_for

    pytest.importorskip("moviepy")
    sb3_set, ours_only = sb3_overrides_for({"video_every": "2", "save_buffer": "false"})
    assert sb3_set == {"video_every": 2, "save_buffer": False} and ours_only == []  # compare --set reaches SB3
    run_dir = Path(train_baseline("dqn", "CartPole-v1", steps=600, out=tmp_path, progress=False,
                                  overrides={"eval_every": 200, "eval_episodes": 1, "final_eval_episodes": 1,
                                             **sb3_set})["run_dir"])
    assert [p.name for p in (run_dir / "videos").glob("*.mp4")] == ["step400-episode-0.mp4"]
