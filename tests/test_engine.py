"""Engine: run directory contents, checkpoints (atomic, safe loading), env-state snapshots, TensorBoard."""

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rlsuite.config.cards import load_env_card
from rlsuite.run.checkpoint import decode, encode, env_state, load_checkpoint, set_env_state
from rlsuite.envs.make import make_vector_env
from rlsuite.core.errors import UserError


def test_run_directory_has_everything(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "metrics.csv", "summary.json", "status.json", "checkpoints"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["agent"] == "dqn" and config["config"]["hidden"] == [16, 16] and config["seed"] == 1
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["final_eval"]["episodes"] == 3
    assert summary["threshold"] == 475.0 and summary["steps"] == 600
    header = (tiny_run / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,wall_s,episode_return,episode_length,eval_mean,eval_std"
    assert json.loads((tiny_run / "status.json").read_text())["status"] == "complete"


def test_tensorboard_namespaces(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "charts/episodic_return" in tags and "eval/mean_return" in tags and "losses/td_loss" in tags
    assert "hyperparameters/text_summary" in acc.Tags()["tensors"]


def test_checkpoint_loads_weights_only_and_refuses_others(tmp_path, tiny_run):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 600 and "q" in ckpt["state"]
    assert not list((tiny_run / "checkpoints").glob("*.tmp"))  # atomic write left no temp file

    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a zip at all")
    with pytest.raises(UserError, match="corrupt or not an rlsuite checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"model": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not an rlsuite checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/rlsuite-pwned"),))


def test_pickled_code_in_a_checkpoint_is_never_run(tmp_path):
    Path("/tmp/rlsuite-pwned").unlink(missing_ok=True)
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"format": "rlsuite-checkpoint-v1", "x": _Exploit()}, f, pickle_module=pickle)
    with pytest.raises(UserError, match="corrupt or not an rlsuite checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not Path("/tmp/rlsuite-pwned").exists()


def test_encode_decode_round_trip():
    rng = np.random.default_rng(7)
    value = {"a": np.arange(3, dtype=np.int16), "b": (1, 2.5, None), "c": np.float64(1.25), "g": rng}
    back = decode(encode(value))
    assert back["a"].dtype == np.int16 and back["a"].tolist() == [0, 1, 2]
    assert back["b"] == (1, 2.5, None) and isinstance(back["c"], np.float64)
    assert back["g"].random() == np.random.default_rng(7).random()


def test_env_state_snapshot_restores_the_exact_trajectory():
    card = load_env_card("CartPole-v1")
    a = make_vector_env(card, 2)
    a.reset(seed=0)
    for _ in range(30):
        a.step(np.array([0, 1]))
    snap = env_state(a)
    assert snap is not None
    expected = [a.step(np.array([1, 0]))[0] for _ in range(40)]
    b = make_vector_env(card, 2)
    b.reset(seed=123)
    set_env_state(b, snap)
    got = [b.step(np.array([1, 0]))[0] for _ in range(40)]
    np.testing.assert_array_equal(np.array(got), np.array(expected))


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is None, reason="needs the [box2d] extra (LunarLander)")
def test_env_state_of_box2d_is_reported_unsaveable():
    envs = make_vector_env(load_env_card("LunarLander-v3"), 1)
    envs.reset(seed=0)
    assert env_state(envs) is None
    envs.close()
