"""Logging people expect: TensorBoard HParams for every run (rlsuite's and SB3's), SB3's losses and SPS through the
same writer, and an optional Weights & Biases logger tested offline."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from rlsuite.cli import main

TINY = ["--set", "n_steps=64", "--set", "num_envs=2", "--set", "batch_size=32"]


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events


def _hparams(events) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = {}
    for tag, raw in events.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        out[data.WhichOneof("data")] = getattr(data, data.WhichOneof("data"))
    return out


@pytest.mark.parametrize("command", ["train", "baseline"])
def test_hparams_view_lists_the_run_with_its_hyperparameters_and_final_evaluation(tmp_path, command):
    args = [command, "ppo", "CartPole-v1", "--steps", "2048", "--out", str(tmp_path)] + (TINY if command == "train" else [])
    result = CliRunner().invoke(main, args + (["--quiet"] if command == "train" else []))
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    events = _events(run_dir)
    records = _hparams(events)
    assert set(records) == {"experiment", "session_start_info", "session_end_info"}
    assert [m.name.tag for m in records["experiment"].metric_infos] == ["final/eval_mean", "eval/mean_return"]
    values = records["session_start_info"].hparams
    assert values["env_id"].string_value == "CartPole-v1" and values["seed"].number_value == 0
    assert "gamma" in values and ("n_steps" in values)
    final = events.Scalars("final/eval_mean")
    assert len(final) == 1 and final[0].step >= 2048
    if command == "baseline":  # SB3's own training values, under rlsuite's tags
        tags = events.Tags()["scalars"]
        assert {"losses/value_loss", "losses/policy_gradient_loss", "charts/SPS", "charts/learning_rate"} <= set(tags)


@pytest.fixture(autouse=True)
def untracked(monkeypatch):
    """--track and --wandb-* put their values in os.environ (for child processes); each test's are undone after it,
    so that no later test in the process trains with tracking on."""
    for name in ("RLSUITE_TRACK", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.setenv(name, "")  # recorded first: teardown restores the environment as it was


def test_track_wandb_writes_an_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = CliRunner().invoke(main, ["train", "ppo", "CartPole-v1", "--steps", "2048", "--out", str(tmp_path),
                                       "--quiet", "--track", "wandb", "--wandb-project", "rlsuite-test", *TINY])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").iterdir())
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    data = files[0].read_bytes()  # W&B's record log: its keys and values are stored as text
    for key in (b"rlsuite-test", b"n_steps", b"charts/episodic_return", b"eval/mean_return", b"final/eval_mean"):
        assert key in data, key


def test_track_wandb_without_the_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    result = CliRunner().invoke(main, ["train", "ppo", "CartPole-v1", "--steps", "2048", "--out", str(tmp_path),
                                       "--track", "wandb", *TINY])
    assert_one_line_error(result, "needs the wandb package", "rlsuite[wandb]")
    assert not Path(tmp_path / "runs").exists() or all(
        (d / "status.json").exists() for d in (tmp_path / "runs").iterdir())


def test_no_test_leaves_tracking_on():
    """Runs after the tracking tests (file order): the fixture undid what --track set."""
    import os

    assert not os.environ.get("RLSUITE_TRACK")
