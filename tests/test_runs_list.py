"""Finding runs: `rlsuite runs`, `latest`, a unique prefix of a name, and a suggestion for a wrong path."""

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_DQN, assert_one_line_error

from rlsuite import runs
from rlsuite.cli import main
from rlsuite.core.errors import UserError
from rlsuite.learn.optim import Diverged
from rlsuite.run.rundir import resolve_run


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """./runs holding a complete, an interrupted and a failed rlsuite run, an SB3 run and a supervised run."""
    from rlsuite.sb3.baseline import train_baseline
    from rlsuite.supervised.classifier import run_supervised
    from rlsuite.supervised.datasets import DATASETS, write_idx

    import toy_envs  # noqa: F401 - registers the env whose odd seeds turn NaN

    out = tmp_path_factory.mktemp("work")
    made = {"complete": runs.train("dqn", "CartPole-v1", seed=1, steps=600, overrides=dict(TINY_DQN), out=out,
                                   progress=False)["run_dir"]}
    made["interrupted"] = runs.train("dqn", "Acrobot-v1", seed=2, steps=800, overrides=dict(TINY_DQN), out=out,
                                     progress=False, stop_at=400)["run_dir"]
    with pytest.raises(Diverged):
        runs.train("ppo", "toy_envs:OddSeedNan-v0", seed=1, steps=256, out=out, progress=False,
                   overrides={"n_steps": 16, "num_envs": 1, "batch_size": 16})
    made["failed"] = next((out / "runs").glob("ppo-toy_envs-OddSeedNan-v0-*"))
    made["sb3"] = train_baseline("ppo", "CartPole-v1", seed=3, steps=600, out=out, progress=False)["run_dir"]
    data = out / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 400), ("t10k", 100)):
        write_idx(data / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)).astype(np.uint8))
        write_idx(data / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    spec = DATASETS["fashion-mnist"]
    DATASETS["fashion-mnist"] = dataclasses.replace(spec, md5={})
    try:
        time.sleep(1.1)  # the supervised run is the latest
        made["supervised"] = run_supervised("fashion-mnist", "mlp", epochs=1, data_dir=data, out=out, progress=False,
                                            overrides={"val_size": "50", "torch_threads": "1"},
                                            allow_download=False)["run_dir"]
    finally:
        DATASETS["fashion-mnist"] = spec
    return out, {k: Path(v) for k, v in made.items()}


def test_runs_lists_a_folder_of_mixed_runs(mixed, monkeypatch):
    import toy_envs  # noqa: F401 - the failed run's env

    out, made = mixed
    monkeypatch.chdir(out)
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "5 runs" and lines[0].split()[:3] == ["started", "status", "agent"]
    text = "\n".join(lines)
    for kind, status in (("complete", "complete"), ("interrupted", "interrupted"), ("failed", "failed"),
                         ("sb3", "complete"), ("supervised", "complete")):
        line = next(line for line in lines if line.endswith(str(made[kind].relative_to(out))))
        assert f" {status} " in line, (kind, line)
    assert "ppo (sb3)" in text and "supervised" in text
    only = CliRunner().invoke(main, ["runs", "--status", "failed"]).output.strip().splitlines()
    assert only[-1] == "1 run" and only[1].endswith(str(made["failed"].relative_to(out)))
    assert CliRunner().invoke(main, ["runs", "--env", "acrobot"]).output.strip().splitlines()[-1] == "1 run"
    assert_one_line_error(CliRunner().invoke(main, ["runs", "nowhere"]), "nowhere is not a folder")


def test_latest_and_a_prefix_name_a_run_and_a_wrong_path_suggests_one(mixed, monkeypatch):
    out, made = mixed
    monkeypatch.chdir(out)
    from rlsuite.supervised.datasets import DATASETS

    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], md5={}))
    assert resolve_run("latest").resolve() == made["supervised"].resolve()
    result = CliRunner().invoke(main, ["eval", "latest", "--json"])
    assert result.exit_code == 0 and "test_acc" in json.loads(result.output), result.output
    prefix = made["complete"].name[:-3]
    assert resolve_run(prefix).resolve() == made["complete"].resolve()
    result = CliRunner().invoke(main, ["eval", prefix, "--episodes", "1"])
    assert result.exit_code == 0, result.output
    with pytest.raises(UserError, match="is the start of 2 runs' names"):
        resolve_run("dqn-")
    wrong = f"runs/{made['complete'].name[:-1]}x"
    result = CliRunner().invoke(main, ["eval", wrong])
    assert_one_line_error(result, "is not a run directory", f"did you mean: runs/{made['complete'].name}")
    import rlsuite

    assert rlsuite.load(prefix).predict(np.zeros(4, np.float32)) in (0, 1)


def test_predict_checks_the_observation(mixed, monkeypatch):
    import rlsuite

    out, made = mixed
    policy = rlsuite.load(made["complete"])
    assert policy.predict([0.0, 0.1, 0.0, 0.1]) in (0, 1)  # a list is one observation
    assert policy.predict(np.zeros((3, 4))).shape == (3,)  # a batch (a vector env's observations)
    for bad, fragment in (([1.0, 2.0], "have shape (4,)"), (np.zeros((2, 5)), "got shape (2, 5)"),
                          (["a", "b", "c", "d"], "give numbers"), ([[1.0], [1.0, 2.0]], "not an array of numbers")):
        with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            policy.predict(bad)
    # the batch call checks too, and neither takes NaN
    assert policy(np.zeros((2, 4))).shape == (2,)
    for bad in (np.zeros(4), None, np.zeros((1, 3)), "abcd", np.full((1, 4), np.nan)):
        with pytest.raises(UserError):
            policy(bad)
    with pytest.raises(UserError, match="NaN or infinity"):
        policy.predict(np.full(4, np.inf))
    with pytest.raises(UserError, match="device must be"):
        rlsuite.load(made["complete"], device=None)
    with pytest.raises(UserError, match="episodes must be"):
        rlsuite.evaluate(made["complete"], episodes="2")


def test_runs_lists_a_run_whose_status_was_edited(mixed, tmp_path):
    import shutil

    out, made = mixed
    copy = tmp_path / "edited" / "r"
    shutil.copytree(made["complete"], copy)
    (copy / "status.json").write_text('{"status": "complete", "step": "NaN"}')
    result = CliRunner().invoke(main, ["runs", str(tmp_path / "edited")])
    assert result.exit_code == 0 and "Traceback" not in result.output and result.output.strip().endswith("1 run")


def test_latest_is_the_run_created_last_not_the_one_touched_last(mixed, monkeypatch):
    out, made = mixed
    monkeypatch.chdir(out)
    future = time.time() + 3600
    os.utime(made["complete"] / "config.yaml", (future, future))  # as a resume rewrites it
    wandb_copy = made["interrupted"] / "wandb" / "run-x" / "files"
    wandb_copy.mkdir(parents=True)
    (wandb_copy / "config.yaml").write_text("wandb_version: 1\n")  # W&B's own config.yaml is not a run
    assert resolve_run("latest").resolve() == made["supervised"].resolve()
    assert all("wandb" not in str(r["run_dir"]) for r in runs.list_runs("runs"))
