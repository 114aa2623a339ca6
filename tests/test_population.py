"""Populations: several seeds trained together in one process, each member an independent run.

Tiny budgets: these check independence, run directories, divergence and the commands, not learning
(benchmarks/populations.py measures learning and speed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import assert_one_line_error
from rlsuite import runs
from rlsuite.agents import pg
from rlsuite.cli import main
from rlsuite.core.errors import UserError
from rlsuite.run.checkpoint import load_checkpoint

TINY_PPO = {"num_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 2}
STEPS = 320


def weights(run_dir) -> dict:
    state = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["state"]
    return state.get("model") or state.get("q") or {**state["actor"], **{f"critics.{k}": v for k, v in state["critics"].items()}}


def assert_same_weights(a: dict, b: dict, atol=1e-5):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=atol, msg=key)


@pytest.mark.parametrize("agent,env_id,overrides", [
    ("ppo", "CartPole-v1", TINY_PPO),
    ("dqn", "CartPole-v1", {"learning_starts": 64, "train_freq": 16, "gradient_steps": 4, "batch_size": 16,
                            "target_update_interval": 32, "n_step": 3, "hidden": (16, 16)}),
    ("dqn", "Acrobot-v1", {"learning_starts": 64, "num_envs": 2, "prioritized": True, "batch_size": 16,
                           "hidden": (16,)}),
    ("sac", "Pendulum-v1", {"learning_starts": 100, "batch_size": 16, "hidden": (16, 16), "buffer_size": 1000}),
    ("td3", "MountainCarContinuous-v0", {"learning_starts": 100, "batch_size": 16, "hidden": (16,), "num_envs": 2,
                                         "buffer_size": 1000, "policy_delay": 2}),
    ("a2c", "Pendulum-v1", {"num_envs": 2, "n_steps": 8, "normalize_obs": True, "normalize_reward": True}),
])
def test_a_member_trains_as_the_same_seed_would_alone(tmp_path, agent, env_id, overrides):
    """Independence: member m's weights, RNG streams, envs and statistics are its own, so a member of a
    population ends where a single run of its seed ends (up to the rounding of batched matmuls)."""
    together = runs.train_seeds(agent, env_id, [4, 9, 11], steps=STEPS, overrides=overrides, out=tmp_path / "pop",
                                progress=False)
    assert [r["status"] for r in together] == ["complete"] * 3 and [r["seed"] for r in together] == [4, 9, 11]
    alone = runs.train(agent, env_id, seed=9, steps=STEPS, overrides=overrides, out=tmp_path / "one", progress=False)
    assert_same_weights(weights(together[1]["run_dir"]), weights(alone["run_dir"]))
    # ...and the members differ from each other
    first, second = weights(together[0]["run_dir"]), weights(together[1]["run_dir"])
    assert not all(torch.allclose(first[k], second[k]) for k in first)
    np.testing.assert_allclose(together[1]["final_eval"]["mean"], alone["final_eval"]["mean"], rtol=1e-3)


def test_every_member_is_a_run_directory_the_other_commands_read(tmp_path):
    results = runs.train_seeds("ppo", "CartPole-v1", [0, 1], steps=STEPS, overrides=TINY_PPO, out=tmp_path,
                               progress=False)
    for r in results:
        run_dir = Path(r["run_dir"])
        for name in ("config.yaml", "metrics.csv", "status.json", "summary.json", "checkpoints/last.pt"):
            assert (run_dir / name).exists(), name
        assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
        again = runs.evaluate_run(run_dir, episodes=3)
        assert again["episodes"] == 3 and np.isfinite(again["mean"])
        assert r["cpu_s"] is not None and r["cpu_s"] > 0
    policy = runs.load_policy(results[0]["run_dir"], "cpu")
    assert policy.predict(np.zeros(4, np.float32)) in (0, 1)


def test_a_member_that_diverges_stops_alone(tmp_path, monkeypatch, capsys):
    step = pg.member_gradient_step
    calls = {"n": 0}

    def poisoned(optimizer, losses, alive, max_grad_norm, guard):
        calls["n"] += 1
        if calls["n"] == 3:  # member 1's loss turns NaN in one minibatch
            losses = losses * torch.tensor([1.0, float("nan"), 1.0])
        step(optimizer, losses, alive, max_grad_norm, guard)

    monkeypatch.setattr(pg, "member_gradient_step", poisoned)
    results = runs.train_seeds("ppo", "CartPole-v1", [0, 1, 2], steps=STEPS, overrides=TINY_PPO, out=tmp_path,
                               progress=False)
    assert [r["status"] for r in results] == ["complete", "failed", "complete"]
    failed = Path(results[1]["run_dir"])
    status = json.loads((failed / "status.json").read_text())
    assert status["status"] == "failed" and "diverged" in status["error"]
    assert not (failed / "summary.json").exists()
    err = capsys.readouterr().err
    assert err.count("diverged") == 1 and "Traceback" not in err
    for r in (results[0], results[2]):  # the others' weights stayed finite and trained on
        assert all(torch.isfinite(v).all() for v in weights(r["run_dir"]).values())


def test_seeds_on_the_command_line(tmp_path):
    runner = CliRunner()
    args = ["train", "ppo", "CartPole-v1", "--steps", str(STEPS), "--out", str(tmp_path), "--quiet"]
    args += [x for k, v in TINY_PPO.items() for x in ("--set", f"{k}={v}")]
    result = runner.invoke(main, args + ["--seeds", "0,2-3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:2] == ["seed", "status"] and [ln.split()[0] for ln in lines[1:]] == ["0", "2", "3"]
    assert len(list((tmp_path / "runs").iterdir())) == 3
    for bad, message in (("3-1", "--seeds"), ("a", "--seeds"), ("0,0", "distinct"), ("-2", "--seeds"),
                         ("0-5000", "--seeds")):
        assert_one_line_error(runner.invoke(main, args + ["--seeds", bad]), message)
    assert_one_line_error(runner.invoke(main, args + ["--seeds", "0-1", "--seed", "3"]), "not both")


def test_seeds_of_agents_without_populations_train_one_after_another(tmp_path):
    results = runs.train_seeds("reinforce", "CartPole-v1", [0, 1], steps=256,
                               overrides={"num_envs": 2, "n_steps": 16}, out=tmp_path, progress=False)
    assert [r["seed"] for r in results] == [0, 1] and all(r["status"] == "complete" for r in results)
    with pytest.raises(UserError, match="distinct"):
        runs.train_seeds("ppo", "CartPole-v1", [1, 1], out=tmp_path)


def test_the_python_api_takes_seeds(tmp_path):
    import rlsuite

    results = rlsuite.train("ppo", "CartPole-v1", seeds=[5, 6], steps=STEPS, overrides=TINY_PPO, out=tmp_path)
    assert [r["seed"] for r in results] == [5, 6]


def test_seeds_of_an_experiment_are_reused_and_resumed_together(tmp_path):
    """What compare, bench and the benchmarks call: finished members are reused, members interrupted at one
    step resume together and end where an uninterrupted population ends."""
    stamp = runs.fingerprint("ppo", "CartPole-v1", STEPS, TINY_PPO)
    names = [f"m{s}" for s in (0, 1, 2)]

    def seeds(out, **kw):
        return runs.reuse_or_train_seeds(out, names, [0, 1, 2], "ppo", "CartPole-v1", steps=STEPS, overrides=TINY_PPO,
                                         fingerprint=stamp, **kw)

    straight = seeds(tmp_path / "a")
    assert [r["status"] for r in straight] == ["complete"] * 3
    stamps = [(Path(r["run_dir"]) / "summary.json").stat().st_mtime_ns for r in straight]
    again = seeds(tmp_path / "a")
    assert [(Path(r["run_dir"]) / "summary.json").stat().st_mtime_ns for r in again] == stamps  # reused, not retrained
    stopped = seeds(tmp_path / "b", stop_at=160)
    assert [r["status"] for r in stopped] == ["interrupted"] * 3
    resumed = seeds(tmp_path / "b")
    assert [r["status"] for r in resumed] == ["complete"] * 3
    for a, b in zip(straight, resumed):
        assert_same_weights(weights(a["run_dir"]), weights(b["run_dir"]), atol=1e-6)
    # a member whose run was lost is trained again, alone; the others are reused
    (Path(resumed[1]["run_dir"]) / "summary.json").unlink()
    redone = seeds(tmp_path / "b")
    assert [(Path(r["run_dir"]) / "summary.json").exists() for r in redone] == [True] * 3
    assert_same_weights(weights(redone[1]["run_dir"]), weights(straight[1]["run_dir"]))


def test_members_checkpoint_at_the_same_step(tmp_path):
    """Time-based checkpoints: each member's clock would come due at its own step; a population saves every
    member together, so that after a kill they resume together (before, members drifted apart)."""
    overrides = {**TINY_PPO, "checkpoint_minutes": 0.0005}
    results = runs.train_seeds("ppo", "CartPole-v1", [0, 1, 2], steps=STEPS, overrides=overrides, out=tmp_path,
                               progress=False, stop_at=200)
    steps = {load_checkpoint(Path(r["run_dir"]) / "checkpoints" / "last.pt")["step"] for r in results}
    assert len(steps) == 1


def test_when_every_member_diverges_each_keeps_its_own_failure(tmp_path, monkeypatch, capsys):
    step = pg.member_gradient_step

    def poisoned(optimizer, losses, alive, max_grad_norm, guard):
        step(optimizer, losses * float("nan"), alive, max_grad_norm, guard)

    monkeypatch.setattr(pg, "member_gradient_step", poisoned)
    results = runs.train_seeds("ppo", "CartPole-v1", [0, 1], steps=STEPS, overrides=TINY_PPO, out=tmp_path,
                               progress=False)
    assert [r["status"] for r in results] == ["failed", "failed"]
    for r in results:
        status = json.loads((Path(r["run_dir"]) / "status.json").read_text())
        assert status["status"] == "failed" and Path(r["run_dir"]).name in capsys.readouterr().err + r["run_dir"]
        assert "diverged" in status["error"]
