"""The Python API, and every command taking every kind of run directory (rlsuite's, SB3's, supervised)."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from click.testing import CliRunner

import rlsuite
from conftest import TINY_DQN, assert_one_line_error
from rlsuite.cli import main

TINY_EVAL = {"eval_every": "256", "eval_episodes": "2", "final_eval_episodes": "3"}


def test_train_load_predict_from_python(tmp_path):
    result = rlsuite.train("dqn", "CartPole-v1", steps=600, overrides=dict(TINY_DQN), out=tmp_path)
    policy = rlsuite.load(result["run_dir"])
    obs, _ = gym.make("CartPole-v1").reset(seed=3)
    one = policy.predict(obs)
    batch = policy.predict(np.stack([obs, obs]))
    assert np.ndim(one) == 0 and batch.shape == (2,) and batch[0] == one
    again = rlsuite.evaluate(result["run_dir"])
    assert again["returns"] == result["final_eval"]["returns"]  # the same protocol, the same episodes


@pytest.mark.parametrize("agent, env_id", [("ppo", "CartPole-v1"), ("ppo", "Acrobot-v1")])  # Acrobot: VecNormalize
def test_eval_takes_an_sb3_baseline_run(tmp_path, agent, env_id):
    from rlsuite.sb3.baseline import train_baseline

    summary = train_baseline(agent, env_id, steps=512, out=tmp_path, progress=False)
    result = CliRunner().invoke(main, ["eval", summary["run_dir"], "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["implementation"] == "sb3"
    # the same weights and normalisation statistics as the run's own final evaluation: the same returns
    assert data["returns"] == summary["final_eval"]["returns"]


def test_resume_extends_a_finished_run(tmp_path):
    first = rlsuite.train("dqn", "CartPole-v1", steps=600, overrides=dict(TINY_DQN), out=tmp_path)
    runner = CliRunner()
    assert_one_line_error(runner.invoke(main, ["train", "--resume", first["run_dir"]]), "already complete", "--steps N")
    assert_one_line_error(runner.invoke(main, ["train", "--resume", first["run_dir"], "--steps", "500"]),
                          "give a larger total")
    result = runner.invoke(main, ["train", "--resume", first["run_dir"], "--steps", "1200"])
    assert result.exit_code == 0, result.output
    summary = json.loads((Path(first["run_dir"]) / "summary.json").read_text())
    assert summary["steps"] == 1200


def test_list_shows_what_a_run_uses(tmp_path):
    out = CliRunner().invoke(main, ["list", "dqn"]).output
    row = next(line for line in out.splitlines() if line.startswith("hidden"))
    assert "(128, 128) *" in row and "(64, 64)" in row  # the card default entry, marked, beside the dataclass's
    out = CliRunner().invoke(main, ["list", "dqn", "--env", "CartPole-v1"]).output
    row = next(line for line in out.splitlines() if line.startswith("train_freq"))
    assert row.split()[1] == "256"
    assert "note:" not in out  # CartPole-v1 has an entry in dqn's card
    out = CliRunner().invoke(main, ["list", "sac", "--env", "CartPole-v1"]).output
    assert "note: sac's card has no entry for CartPole-v1: these are its untuned defaults" in out
    assert "supervised" in CliRunner().invoke(main, ["list"]).output
    assert CliRunner().invoke(main, ["list", "supervised"]).exit_code == 0


def test_list_columns_never_run_together():
    # target_update_interval (22 characters) must not run into its value: "target_update_interval1000"
    out = CliRunner().invoke(main, ["list", "dqn"]).output
    row = next(line for line in out.splitlines() if line.startswith("target_update_interval"))
    assert row.split()[1] == "1000"
    header = next(line for line in out.splitlines() if line.startswith("hyperparameter"))
    epsilon = next(line for line in out.splitlines() if line.startswith("epsilon"))
    assert epsilon.index("{'linear': [1.0, 0.05, 0.1]}") == header.index("dataclass default")


def test_the_api_page_example_runs_as_written(tmp_path, monkeypatch):
    """docs/api.md's example, with its budgets cut so that the test takes seconds (the rest exactly as written)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    code = code.replace("steps=50_000", "steps=4_096").replace("steps=100_000", "steps=8_192")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/api.md", "exec"), namespace)  # our own documentation, not a config string
    assert namespace["action"] in (0, 1)


def test_api_errors_speak_python(tmp_path):
    import pytest

    import rlsuite
    from rlsuite.core.errors import UserError

    for call, message in [
        (lambda: rlsuite.train("ppo", "CartPole-v1", overrides={"lr": "fast"}, out=tmp_path), "overrides: lr='fast'"),
        (lambda: rlsuite.train("ppo", "CartPole-v1", steps=-1, out=tmp_path), "steps must be"),
        (lambda: rlsuite.train("ppo", "CartPole-v1", seed=-1, out=tmp_path), "seed must be"),
        (lambda: rlsuite.train(123, "CartPole-v1"), "agent must be an agent's name"),
        (lambda: rlsuite.train("ppo", "CartPole-v1", seeds=5), "seeds must be a list of integers"),
        (lambda: rlsuite.train("ppo", "CartPole-v1", out=5), "out must be a folder path"),
        (lambda: rlsuite.evaluate(None), "run_dir must be a run directory"),
        (lambda: rlsuite.load(3), "run_dir must be a run directory"),
    ]:
        with pytest.raises(UserError) as caught:
            call()
        assert message in str(caught.value) and "--" not in str(caught.value), str(caught.value)
