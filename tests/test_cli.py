"""Every CLI command through CliRunner, good and bad input: one-line errors, non-zero exits."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TINY_DQN, assert_one_line_error
from rlsuite.cli import main

TINY_SETS = [arg for k, v in TINY_DQN.items() for arg in ("--set", f"{k}={v}")]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)




def test_train_then_eval_then_list(tmp_path):
    result = invoke("train", "dqn", "CartPole-v1", "--steps", 600, "--seed", 2, "--out", tmp_path, *TINY_SETS)
    assert result.exit_code == 0, result.output
    assert "final evaluation" in result.output and "run directory" in result.output
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 600 and summary["seed"] == 2

    result = invoke("eval", run_dir, "--json")
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.output)
    # same policy, same evaluation seed: the re-evaluation reproduces the run's final evaluation
    assert evaluated["returns"] == summary["final_eval"]["returns"]
    result = invoke("eval", run_dir, "--episodes", 2)
    assert result.exit_code == 0 and "over 2 episodes" in result.output

    assert f"run directory: {run_dir.absolute()}" in invoke("train", "--resume", run_dir, "--steps", 700).output

    result = invoke("list")
    assert result.exit_code == 0 and "dqn" in result.output and "CartPole-v1" in result.output
    result = invoke("list", "dqn")
    assert result.exit_code == 0 and "target_update_interval" in result.output


def test_resume_from_the_cli(tmp_path):
    from rlsuite import runs

    stopped = runs.train("dqn", "CartPole-v1", steps=800, overrides=dict(TINY_DQN), out=tmp_path, progress=False, stop_at=400)
    result = invoke("train", "--resume", stopped["run_dir"])
    assert result.exit_code == 0, result.output
    assert json.loads((Path(stopped["run_dir"]) / "summary.json").read_text())["steps"] == 800


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("train", "dqm", "CartPole-v1"), ["unknown agent 'dqm'", "did you mean: dqn"]),
        (("train", "dqn", "CartPole-v2"), ["unknown environment 'CartPole-v2'", "CartPole-v1"]),
        (("train", "dqn", "nosuchpkg:Foo-v0"), ["cannot import 'nosuchpkg'"]),
        (("train", "dqn", "CartPole-v1", "--set", "learning_rate=1e-3"), ["unknown hyperparameter 'learning_rate'"]),
        (("train", "dqn", "CartPole-v1", "--set", "btach_size=3"), ["did you mean: batch_size"]),
        (("train", "dqn", "CartPole-v1", "--set", "batch_size=abc"), ["batch_size='abc' is not an integer"]),
        (("train", "dqn", "CartPole-v1", "--set", "batch_size=1.5"), ["not an integer"]),
        # a list field's example is a list ("give e.g. hidden=64" would suggest a one-layer net)
        (("train", "sac", "Pendulum-v1", "--set", "hidden=abc"), ["hidden='abc' is not an integer; give e.g. hidden=64,64"]),
        (("train", "sac", "Pendulum-v1", "--set", "hidden=64,2.5"), ["hidden='2.5' is not an integer; give e.g. hidden=64,64"]),
        (("train", "dqn", "CartPole-v1", "--set", "lr=fast"), ["lr='fast'"]),
        (("train", "dqn", "CartPole-v1", "--set", "double=maybe"), ["not a boolean"]),
        (("train", "dqn", "CartPole-v1", "--set", "loss=l1"), ["not one of huber, mse"]),
        (("train", "dqn", "CartPole-v1", "--set", "noequals"), ["not key=value"]),
        (("train", "dqn", "CartPole-v1", "--set", "tau=2"), ["tau must be in (0, 1]"]),
        (("train", "dqn", "Pendulum-v1"), ["DQN needs a discrete action space", "Box"]),
        (("train", "dqn", "CartPole-v1", "--steps", "0"), ["--steps must be a number of environment steps"]),
        (("train", "dqn", "CartPole-v1", "--steps", "-5"), ["--steps must be a number of environment steps"]),
        (("train", "dqn", "CartPole-v1", "--device", "tpu"), ["unknown device 'tpu'"]),
        (("train",), ["give an agent and an environment"]),
        (("list", "ppo2"), ["unknown agent 'ppo2'"]),
    ],
)
def test_bad_training_input(tmp_path, args, fragments):
    result = invoke(*args, "--out", tmp_path) if args[0] == "train" else invoke(*args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke("train", "dqn", "CartPole-v1", "--steps", 100, "--out", blocker / "sub")
    assert_one_line_error(result, "cannot create a run directory", "choose a writable --out")


def test_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke("train", "dqn", "CartPole-v1", "--device", "cuda", "--out", tmp_path)
    assert_one_line_error(result, "no CUDA GPU")


def test_eval_bad_inputs(tmp_path, tiny_run):
    assert_one_line_error(invoke("eval", tmp_path / "nowhere"), "is not a run directory")

    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "checkpoints" / "last.pt").unlink()
    assert_one_line_error(invoke("eval", broken), "no checkpoint at")
    (broken / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(invoke("eval", broken), "corrupt or not an rlsuite checkpoint")
    import torch

    torch.save({"format": "something-else"}, broken / "checkpoints" / "last.pt")
    assert_one_line_error(invoke("eval", broken), "not an rlsuite checkpoint")
    (broken / "config.yaml").write_text("agent: [unclosed")
    assert_one_line_error(invoke("eval", broken), "config.yaml is not valid YAML")
    assert_one_line_error(invoke("eval", tiny_run, "--episodes", 0), "--episodes must be in [1, 10000]")


def test_resume_bad_inputs(tmp_path, tiny_run):
    assert_one_line_error(invoke("train", "--resume", tmp_path), "is not a run directory")
    assert_one_line_error(invoke("train", "--resume", tiny_run), "already complete")
    assert_one_line_error(invoke("train", "dqn", "CartPole-v1", "--resume", tiny_run), "drop AGENT")


def test_bench_rejects_unknown_sections(tmp_path):
    assert_one_line_error(invoke("bench", "--sections", "nope", "--out", tmp_path), "unknown benchmark section 'nope'")


def test_bench_index_writes_the_summary_of_the_report_folders(tmp_path):
    (tmp_path / "README.md").write_text("# Stale page\n")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "README.md").write_text("# X report\n\nRegenerate: `python x.py`  \nDate: 2026-01-02 · cpu\n")
    result = invoke("bench", "--index", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# rlsuite vs Stable-Baselines3") and "- x: [X report](x/README.md) (2026-01-02)" in text
    assert "Stale" not in text
    assert_one_line_error(invoke("bench", "--index", "--out", tmp_path / "empty"), "is not a folder of reports")


def test_list_supervised_and_pg_agents():
    result = invoke("list")
    assert all(name in result.output for name in ("dqn", "ppo", "a2c", "reinforce", "supervised"))
    result = invoke("list", "supervised")
    assert result.exit_code == 0 and "augment_shift" in result.output
    result = invoke("list", "ppo")
    assert result.exit_code == 0 and "clip_range" in result.output and "Pendulum-v1" in result.output


def test_a_run_too_short_to_learn_says_so_before_it_starts(tmp_path):
    """--steps below learning_starts: random actions, no update; the run would look like one that learned nothing."""
    sets = [*TINY_SETS, "--set", "final_eval_episodes=1"]
    result = invoke("train", "dqn", "CartPole-v1", "--steps", 150, "--out", tmp_path, *sets)
    assert result.exit_code == 0, result.output
    assert ("note: this run's 150 steps end before learning starts (learning_starts 200): every action is random "
            "and no gradient step runs; give more --steps or --set learning_starts=N") in result.output
    assert result.output.index("note:") < result.output.index("final evaluation")
    assert "over 1 episode " in result.output  # one episode, not "1 episodes"
    result = invoke("train", "dqn", "CartPole-v1", "--steps", 250, "--out", tmp_path, *sets)
    assert result.exit_code == 0 and "note:" not in result.output


LATE_SIGTERM = """
import atexit, os, signal, sys, time
from rlsuite.cli import {entry} as entry
def late_stop():  # a SIGTERM while the interpreter exits, after the command's work and output
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # time for a Python-level handler to run
atexit.register(late_stop)
sys.argv = ["rlsuite", "--version"]
entry()
"""


def test_a_sigterm_while_the_command_exits_is_neither_a_traceback_nor_a_kill():
    # Found by the TD3 HalfCheetah fault trials: a SIGTERM in the ~2 s of teardown after a complete run
    # printed "Exception ignored in atexit callback ... SystemExit: 143" (exit 0) or killed the process (-15).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LATE_SIGTERM.format(entry="console")], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "") and "version" in done.stdout
    # the click group alone (what the entry point was before) shows the fault this guards against
    before = subprocess.run([sys.executable, "-c", LATE_SIGTERM.format(entry="main")], capture_output=True,
                            text=True, timeout=120)
    assert "SystemExit: 143" in before.stderr
