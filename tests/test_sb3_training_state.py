"""An interrupted SB3 baseline run continues from its checkpoint (benchmarks span sessions: an SB3 SAC
run on Hopper takes hours, and must not start over after every interruption)."""

import csv
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import assert_one_line_error
from rlsuite.sb3.baseline import make_model, sb3_state, train_baseline
from rlsuite.sb3.hyperparameters import baseline_hyperparameters
from rlsuite.cli import main
from rlsuite.runs import reuse_or_train
from rlsuite.sb3.training_state import restore_training_state, training_state

FAST_EVAL = {"eval_every": 200, "eval_episodes": 1, "final_eval_episodes": 2}


def flat(state, prefix=""):
    """{path: value} of a nested state, tensors as numpy arrays."""
    if isinstance(state, dict):
        return {k2: v2 for k, v in state.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
    if isinstance(state, (list, tuple)):
        return {k2: v2 for i, v in enumerate(state) for k2, v2 in flat(v, f"{prefix}{i}.").items()}
    return {prefix: state.numpy() if isinstance(state, torch.Tensor) else state}


def scalars(model) -> dict:
    """The model's own int/float attributes (counters, schedule positions), those a run may differ in aside."""
    skip = {"seed", "start_time", "_num_timesteps_at_start", "_total_timesteps"}  # learn() sets these
    return {k: v for k, v in vars(model).items() if type(v) in (int, float) and k not in skip}


@pytest.mark.parametrize("agent,env_id,changes", [
    ("dqn", "CartPole-v1", {"learning_starts": 50, "target_update_interval": 7}),  # counters drive target updates
    ("sac", "Pendulum-v1", {"learning_starts": 50, "buffer_size": 1000}),  # a learned entropy coefficient
    ("td3", "Pendulum-v1", {"learning_starts": 50, "buffer_size": 300, "n_envs": 2,  # a wrapped buffer, 2 envs
                            "train_freq": 1}),
    ("a2c", "Acrobot-v1", {"n_envs": 2}),  # VecNormalize statistics (the zoo's normalize: true)
])
def test_training_state_round_trips_into_a_fresh_model(agent, env_id, changes):
    hp = {**baseline_hyperparameters(agent, env_id)[0], **changes}
    model = make_model(agent, env_id, hp, 0, "cpu", int(hp.get("n_envs", 1)))
    model.learn(400)
    saved = {**sb3_state(model), **training_state(model)}
    fresh = make_model(agent, env_id, hp, 1, "cpu", int(hp.get("n_envs", 1)))
    assert restore_training_state(fresh, saved) == model.num_timesteps
    a, b = flat(saved), flat({**sb3_state(fresh), **training_state(fresh)})
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert scalars(fresh) == scalars(model)  # every counter SB3 keeps, not only those saved on purpose
    assert a["training.counters.num_timesteps."] >= 400
    if agent in ("dqn", "sac", "td3"):  # the filled part of the replay buffer, and where the next write goes
        buf = model.replay_buffer
        assert a["buffer.pos."] == buf.pos and len(a["buffer.observations."]) == (buf.buffer_size if buf.full else buf.pos)
        assert np.array_equal(fresh.replay_buffer.next_observations, buf.next_observations)
    if agent == "td3":
        assert model.replay_buffer.full and model.replay_buffer.observations.shape[1] == 2
    if agent == "sac":  # restored in place: the entropy optimizer still trains the model's own tensor
        assert fresh.ent_coef_optimizer.param_groups[0]["params"][0] is fresh.log_ent_coef
        assert "training.modules.ent_coef_optimizer.state.0.exp_avg." in a
    if agent == "a2c":
        assert a["training.vec_normalize.obs_rms.count."] > 400


def train_fn(stop_at=None, agent="dqn", env_id="CartPole-v1", steps=800, changes=None, **kwargs):
    return partial(train_baseline, agent, env_id, steps=steps, progress=False, stop_at=stop_at,
                   overrides={"learning_starts": 100, **FAST_EVAL, **(changes or {})}, **kwargs)


def steps_logged(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def must_not_restart(**_):
    raise AssertionError("the interrupted SB3 run was trained again from step 0")


@pytest.mark.parametrize("agent,env_id,steps,changes", [
    ("dqn", "CartPole-v1", 800, {"learning_starts": 100}),  # train_freq 256: a stop mid-chunk lost its updates
    ("ppo", "CartPole-v1", 800, {}),  # 8 envs x 32 steps a rollout: a stop mid-rollout lost the rollout
    ("sac", "Pendulum-v1", 600, {"learning_starts": 100}),
])
def test_an_interrupted_sb3_run_continues_where_it_stopped(tmp_path, agent, env_id, steps, changes):
    overrides = {**FAST_EVAL, **changes}
    whole = partial(train_baseline, agent, env_id, steps=steps, progress=False, out=tmp_path / "whole",
                    overrides=overrides)()
    first = reuse_or_train(tmp_path, "run", partial(train_baseline, agent, env_id, steps=steps, progress=False,
                                                    stop_at=steps // 2, out=tmp_path, overrides=overrides),
                           fingerprint={"x": 1})
    run_dir = Path(first["run_dir"])
    assert first["status"] == "interrupted" and steps // 2 <= first["step"] < steps
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == first["step"] == ckpt["state"]["training"]["counters"]["num_timesteps"]
    if "buffer" in ckpt["state"]:  # one env: every step up to the checkpoint is stored, none after it
        assert ckpt["state"]["buffer"]["pos"] == ckpt["step"]
    summary = reuse_or_train(tmp_path, "run", must_not_restart, fingerprint={"x": 1})
    assert summary["status"] == "complete" and summary["wall_s"] > ckpt["engine"]["wall_s"]
    assert summary["steps"] == whole["steps"]  # the same rollouts and chunks as the uninterrupted run
    logged = steps_logged(run_dir)
    assert logged == sorted(logged) and logged[0] < first["step"] < logged[-1]  # one history, not two
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert "training" not in torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert summary["resumed_at"] == [first["step"]] and whole["resumed_at"] == []  # reports mark resumed runs
    from rlsuite.experiments.report import per_seed_table

    table = "\n".join(per_seed_table({"sb3": [summary]}))
    assert "| sb3 | 0† |" in table and f"sb3 seed 0 at step {first['step']:,}" in table


def test_an_sb3_run_killed_in_its_final_evaluation_only_finishes(tmp_path):
    done = reuse_or_train(tmp_path, "run", train_fn(out=tmp_path), fingerprint={"x": 1})
    run_dir = Path(done["run_dir"])
    (run_dir / "summary.json").unlink()  # as if killed during the final evaluation, after the last checkpoint
    (run_dir / "status.json").write_text(json.dumps({"status": "running", "step": done["steps"]}))
    again = reuse_or_train(tmp_path, "run", must_not_restart, fingerprint={"x": 1})
    assert again["status"] == "complete" and again["steps"] == done["steps"]
    assert again["final_eval"]["returns"] == done["final_eval"]["returns"]  # the same policy, the same episodes


def test_cli_resumes_an_sb3_run_and_refuses_to_extend_it(tmp_path):
    first = train_fn(stop_at=300, out=tmp_path)()
    run_dir = first["run_dir"]
    result = CliRunner().invoke(main, ["train", "--resume", run_dir, "--steps", "2000", "--quiet"])
    assert_one_line_error(result, "made by sb3", "without --steps")
    result = CliRunner().invoke(main, ["train", "--resume", run_dir, "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((Path(run_dir) / "summary.json").read_text())["steps"] >= 800


def test_an_sb3_checkpoint_from_before_resume_existed_is_trained_again(tmp_path):
    first = reuse_or_train(tmp_path, "old", train_fn(stop_at=300, out=tmp_path), fingerprint={"x": 1})
    path = Path(first["run_dir"]) / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["state"] = {"policy": ckpt["state"]["policy"]}  # what an SB3 checkpoint held before
    torch.save(ckpt, path)
    metrics, status = (Path(first["run_dir"]) / "metrics.csv").read_text(), (Path(first["run_dir"]) / "status.json").read_text()
    result = CliRunner().invoke(main, ["train", "--resume", first["run_dir"], "--quiet"])
    assert_one_line_error(result, "holds only the SB3 policy", "train this baseline again")
    assert (Path(first["run_dir"]) / "metrics.csv").read_text() == metrics  # refused before anything was touched
    assert (Path(first["run_dir"]) / "status.json").read_text() == status
    calls = []

    def retrain(**kwargs):
        calls.append(1)
        return train_fn(out=tmp_path)(**kwargs)

    summary = reuse_or_train(tmp_path, "old", retrain, fingerprint={"x": 1})
    assert calls == [1] and summary["status"] == "complete"


def test_an_sb3_run_without_its_buffer_in_checkpoints_refills_it_before_learning(tmp_path, monkeypatch):
    """save_buffer: false (the Atari cards: SB3 would write ~5.6 GB a checkpoint): a resumed run acts with its
    policy for learning_starts steps, refilling the buffer, before its next gradient step (as rlsuite's DQN)."""
    import stable_baselines3 as sb3

    trained_at = []
    real = sb3.DQN.train
    monkeypatch.setattr(sb3.DQN, "train", lambda self, *a, **k: (trained_at.append(self.num_timesteps), real(self, *a, **k))[1])
    overrides = {**FAST_EVAL, "learning_starts": 100, "train_freq": 4, "gradient_steps": 1, "save_buffer": False}
    fn = partial(train_baseline, "dqn", "CartPole-v1", steps=800, progress=False, out=tmp_path, overrides=overrides)
    first = reuse_or_train(tmp_path, "run", partial(fn, stop_at=400), fingerprint={"x": 1})
    ckpt = torch.load(Path(first["run_dir"]) / "checkpoints" / "last.pt", weights_only=True)
    assert "buffer" not in ckpt["state"] and "training" in ckpt["state"]
    trained_at.clear()
    summary = reuse_or_train(tmp_path, "run", must_not_restart, fingerprint={"x": 1})
    assert summary["status"] == "complete" and summary["steps"] == 800
    assert trained_at and min(trained_at) > first["step"] + 100  # nothing learned from a near-empty buffer
    assert len(trained_at) >= (800 - first["step"] - 100) // 4 - 2  # and learning again after the refill


def test_how_a_run_is_stored_or_filmed_does_not_make_it_stale(tmp_path):
    """save_buffer, checkpoint_* and video_every change no result: a finished run with other values is reused."""
    from rlsuite.runs import _experiment

    stamp = {"agent": "sb3-dqn", "env_id": "ALE/Pong-v5", "steps": 20000, "hyperparameters": {"buffer_size": 100000}}
    stored = {**stamp, "hyperparameters": {"buffer_size": 100000, "save_buffer": False, "video_every": 3}}
    assert _experiment(stored) == _experiment(stamp)
    assert _experiment({**stamp, "hyperparameters": {"buffer_size": 5}}) != _experiment(stamp)
