"""One divergence guard for every agent: a NaN/Inf loss, gradient or weight stops the run with one line
naming the update and the last good checkpoint; status failed, no summary.json, and no checkpoint is
ever written with non-finite weights."""

import json
import re
from pathlib import Path

import pytest
import torch

import toy_envs  # noqa: F401 - registers the toy ids
from conftest import TINY_DQN
from rlsuite import runs
from rlsuite.run.checkpoint import load_checkpoint, nonfinite_tensors
from rlsuite.learn.optim import Diverged

TINY_PG = {"num_envs": "2", "n_steps": "16", "eval_every": "64", "eval_episodes": "2", "final_eval_episodes": "2",
           "hidden": "8,8", "checkpoint_every": "32"}
TINY = {"dqn": {**TINY_DQN, "learning_starts": "16", "checkpoint_every": "24", "eval_every": "64"},
        "reinforce": TINY_PG, "a2c": TINY_PG, "ppo": {**TINY_PG, "batch_size": "16"}}


@pytest.mark.parametrize("agent", ["dqn", "reinforce", "a2c", "ppo"])
def test_nan_rewards_stop_every_agent_cleanly(tmp_path, agent):
    # NanReward-v0: rewards turn NaN after 40 steps of an episode, so the first losses are finite
    with pytest.raises(Diverged, match=rf"{agent} diverged: .*(update [\d,]+|step [\d,]+).*training stopped, "
                                       r"the last good checkpoint is .*last\.pt \(step [\d,]+\)"):
        runs.train(agent, "toy_envs:NanReward-v0", steps=4000, overrides=dict(TINY[agent]), out=tmp_path,
                   progress=False)
    run_dir = next((tmp_path / "runs").iterdir())
    assert not (run_dir / "summary.json").exists()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "diverged" in status["error"]
    # the status records where it diverged (the step its message names) and where a resume would start
    said = int(re.search(r"step ([\d,]+)\)", status["error"]).group(1).replace(",", ""))
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert status["step"] == said > 0 and status["checkpoint_step"] == ckpt["step"] <= said
    learned = {k: v for k, v in ckpt["state"].items() if k not in ("buffer", "nstep", "episodes", "obs", "env")}
    assert nonfinite_tensors(learned) == []
    assert not (run_dir / "lock").exists() or _lock_is_free(run_dir)


def _lock_is_free(run_dir: Path) -> bool:
    from rlsuite.run.rundir import RunLock

    with RunLock(run_dir):
        return True


def test_nonfinite_weights_are_never_checkpointed(tmp_path):
    """Even where no loss was watched (e.g. weights broken between updates), save refuses NaN weights."""
    from rlsuite.run.checkpoint import NonFiniteCheckpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.ones(2)}, check={"model": {"w": torch.ones(2)}})
    good = path.read_bytes()
    with pytest.raises(NonFiniteCheckpoint, match=r"model\.w"):
        save_checkpoint(path, {"w": torch.tensor([1.0, float("nan")])},
                        check={"model": {"w": torch.tensor([1.0, float("nan")])}})
    assert path.read_bytes() == good  # the last good checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_cli_divergence_is_one_line_and_exit_1(tmp_path):
    from click.testing import CliRunner

    from conftest import assert_one_line_error
    from rlsuite.cli import main

    sets = [a for k, v in TINY["dqn"].items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["train", "dqn", "toy_envs:NanReward-v0", "--steps", "4000", "--out",
                                       str(tmp_path), *sets])
    assert_one_line_error(result, "dqn diverged", "last good checkpoint")
