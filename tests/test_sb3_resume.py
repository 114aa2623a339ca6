"""An interrupted SB3 baseline run continues from its checkpoint (benchmarks span sessions: an SB3 SAC
run on Hopper takes an hour here, and used to start over after every interruption)."""

import csv
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import assert_one_line_error
from rlsuite.baselines import baseline_hyperparameters, make_model, sb3_state, train_baseline
from rlsuite.cli import main
from rlsuite.runs import reuse_or_train
from rlsuite.sb3_resume import restore_training_state, training_state

FAST_EVAL = {"eval_every": 200, "eval_episodes": 1, "final_eval_episodes": 2}


def flat(state, prefix=""):
    """{path: value} of a nested state, tensors as numpy arrays."""
    if isinstance(state, dict):
        return {k2: v2 for k, v in state.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
    if isinstance(state, (list, tuple)):
        return {k2: v2 for i, v in enumerate(state) for k2, v2 in flat(v, f"{prefix}{i}.").items()}
    return {prefix: state.numpy() if isinstance(state, torch.Tensor) else state}


@pytest.mark.parametrize("agent,env_id,changes", [
    ("dqn", "CartPole-v1", {"learning_starts": 50, "target_update_interval": 7}),  # counters drive target updates
    ("sac", "Pendulum-v1", {"learning_starts": 50, "buffer_size": 1000}),  # a learned entropy coefficient
    ("a2c", "Acrobot-v1", {"n_envs": 2}),  # VecNormalize statistics (the zoo's normalize: true)
])
def test_training_state_round_trips_into_a_fresh_model(agent, env_id, changes):
    hp = {**baseline_hyperparameters(agent, env_id)[0], **changes}
    model = make_model(agent, env_id, hp, 0, "cpu", int(hp.get("n_envs", 1)))
    model.learn(300)
    saved = {**sb3_state(model), **training_state(model)}
    fresh = make_model(agent, env_id, hp, 1, "cpu", int(hp.get("n_envs", 1)))
    assert restore_training_state(fresh, saved) == model.num_timesteps
    a, b = flat(saved), flat({**sb3_state(fresh), **training_state(fresh)})
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert a["training.counters.num_timesteps."] >= 300
    if agent in ("dqn", "sac"):  # the filled part of the replay buffer, and where the next write goes
        assert a["buffer.pos."] == model.replay_buffer.pos and len(a["buffer.observations."]) == model.replay_buffer.pos
    if agent == "sac":
        assert "training.variables.log_ent_coef." in a and "training.modules.ent_coef_optimizer.state.0.exp_avg." in a
    if agent == "a2c":
        assert a["training.vec_normalize.obs_rms.count."] > 300


def train_fn(stop_at=None, **kwargs):
    return partial(train_baseline, "dqn", "CartPole-v1", steps=800, progress=False, stop_at=stop_at,
                   overrides={"learning_starts": 100, **FAST_EVAL}, **kwargs)


def steps_logged(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_an_interrupted_sb3_run_continues_where_it_stopped(tmp_path):
    first = reuse_or_train(tmp_path, "sb3-run", train_fn(stop_at=400, out=tmp_path), fingerprint={"x": 1})
    run_dir = Path(first["run_dir"])
    assert first["status"] == "interrupted" and 400 <= first["step"] < 800
    wall = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["engine"]["wall_s"]

    def must_not_restart(**_):
        raise AssertionError("the interrupted SB3 run was trained again from step 0")

    summary = reuse_or_train(tmp_path, "sb3-run", must_not_restart, fingerprint={"x": 1})
    assert summary["status"] == "complete" and summary["steps"] >= 800 and summary["wall_s"] > wall
    steps = steps_logged(run_dir)
    assert steps == sorted(steps) and steps[0] < first["step"] < steps[-1]  # one history, not two
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert "training" not in torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["state"]


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
    result = CliRunner().invoke(main, ["train", "--resume", first["run_dir"], "--quiet"])
    assert_one_line_error(result, "holds only the SB3 policy", "train this baseline again")
    calls = []

    def retrain(**kwargs):
        calls.append(1)
        return train_fn(out=tmp_path)(**kwargs)

    summary = reuse_or_train(tmp_path, "old", retrain, fingerprint={"x": 1})
    assert calls == [1] and summary["status"] == "complete"
