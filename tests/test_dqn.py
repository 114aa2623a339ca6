"""DQN: target updates, space checks, determinism, exact resume, and a real learning test."""

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import TINY_DQN, metrics_without_wall
from rlsuite import runs
from rlsuite.agents.dqn import DQNConfig, td_loss
from rlsuite.learn.optim import update_target as _update_target
from rlsuite.run.checkpoint import load_checkpoint
from rlsuite.core.errors import UserError


def test_hard_and_polyak_target_updates():
    q, target = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        q.weight.fill_(1.0); q.bias.fill_(1.0)
        target.weight.fill_(0.0); target.bias.fill_(0.0)
    _update_target(q, target, tau=0.1)
    assert torch.allclose(target.weight, torch.full((2, 2), 0.1))
    _update_target(q, target, tau=0.5)
    assert torch.allclose(target.bias, torch.full((2,), 0.55))  # 0.1 + 0.5 (1 - 0.1)
    _update_target(q, target, tau=1.0)
    assert torch.equal(target.weight, q.weight)


def test_double_q_uses_online_argmax():
    q, target = nn.Linear(1, 2, bias=False), nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        q.weight.copy_(torch.tensor([[1.0], [2.0]]))  # online prefers action 1
        target.weight.copy_(torch.tensor([[5.0], [3.0]]))  # target prefers action 0
    x = torch.ones(1, 1)
    batch = {"obs": x, "next_obs": x, "actions": torch.tensor([0]), "rewards": torch.tensor([0.5]),
             "discounts": torch.tensor([0.9])}
    with torch.no_grad():
        target_next = target(x)
    # y = r + discount * Q_target(s', a*);  q_sa = Q(s, 0) = 1;  td = q_sa - y
    _, td, q_sa = td_loss(q, batch, target_next, DQNConfig(double=False))  # a* = 0 -> y = 0.5 + 0.9 * 5
    assert q_sa.item() == 1.0 and td.item() == pytest.approx(1.0 - 5.0)
    _, td, _ = td_loss(q, batch, target_next, DQNConfig(double=True))  # a* = 1 -> y = 0.5 + 0.9 * 3
    assert td.item() == pytest.approx(1.0 - 3.2)
    batch["discounts"] = torch.tensor([0.0])  # after a termination nothing is bootstrapped
    loss, td, _ = td_loss(q, batch, target_next, DQNConfig(loss="mse"))
    assert td.item() == pytest.approx(0.5) and loss.item() == pytest.approx(0.25)


def test_continuous_actions_are_refused_before_a_run_dir_exists(tmp_path):
    with pytest.raises(UserError, match="DQN needs a discrete action space"):
        runs.train("dqn", "Pendulum-v1", out=tmp_path, progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("switches", [{}, {"double": "true", "dueling": "true", "n_step": "3", "prioritized": "true"}])
def test_determinism_same_seed_same_metrics(tmp_path, switches):
    overrides = {**TINY_DQN, **switches}
    a = runs.train("dqn", "CartPole-v1", seed=3, steps=1200, overrides=overrides, out=tmp_path / "a", progress=False)
    b = runs.train("dqn", "CartPole-v1", seed=3, steps=1200, overrides=overrides, out=tmp_path / "b", progress=False)
    rows = metrics_without_wall(a["run_dir"])
    assert len(rows) > 10 and any(r["eval_mean"] for r in rows)
    assert rows == metrics_without_wall(b["run_dir"])
    assert a["final_eval"]["returns"] == b["final_eval"]["returns"]
    c = runs.train("dqn", "CartPole-v1", seed=4, steps=1200, overrides=overrides, out=tmp_path / "c", progress=False)
    assert metrics_without_wall(c["run_dir"]) != rows  # the seed matters


@pytest.mark.parametrize("switches", [{}, {"n_step": "3", "prioritized": "true"}])
def test_resume_matches_a_straight_run(tmp_path, switches):
    overrides = {**TINY_DQN, **switches, "checkpoint_every": "100000"}
    straight = runs.train("dqn", "CartPole-v1", seed=5, steps=1600, overrides=overrides, out=tmp_path, progress=False)
    stopped = runs.train("dqn", "CartPole-v1", seed=5, steps=1600, overrides=overrides, out=tmp_path,
                         progress=False, stop_at=800)
    assert stopped["status"] == "interrupted"
    run_dir = Path(stopped["run_dir"])
    assert not (run_dir / "summary.json").exists()
    resumed = runs.resume(run_dir, progress=False)
    assert resumed["status"] == "complete"
    assert metrics_without_wall(run_dir) == metrics_without_wall(straight["run_dir"])
    assert resumed["final_eval"]["returns"] == straight["final_eval"]["returns"]
    w1 = load_checkpoint(Path(straight["run_dir"]) / "checkpoints" / "last.pt")["state"]["q"]
    w2 = load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["q"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_resume_of_a_complete_run_is_refused(tiny_run):
    with pytest.raises(UserError, match="already complete"):
        runs.resume(tiny_run, progress=False)


@pytest.mark.learning
def test_dqn_solves_cartpole_with_its_card(tmp_path):
    """The card's CartPole-v1 entry, its own 50k budget, seeds 0-2 as one population (one process, cheaper
    than three runs): at least 2 of the 3 solve (an evaluation mean >= 475; an untrained net scores about
    10-40). Why a quorum on *solving*: another CPU's float kernels send the same seed down another trajectory,
    so one seed proves nothing portable. On seeding 2 the card solved in 30 of 30 runs and stayed solved in 28
    (fresh seeds 100-109 in results/cards/, 200-219 in results/populations/; seeding 1: 37 of 39 solved): at a
    solve rate near 0.97, 2 of 3 fail together for fewer than 1 machine in 300. `stays solved` is measured over
    many seeds in benchmarks/, not asserted here."""
    summaries = runs.train_seeds("dqn", "CartPole-v1", [0, 1, 2], out=tmp_path, progress=False)
    assert all(s["steps"] == 50_000 for s in summaries)
    outcomes = [(s["solved"], s["final_eval"]["mean"]) for s in summaries]
    assert sum(solved for solved, _ in outcomes) >= 2, f"fewer than 2 of 3 seeds solved CartPole-v1: (solved, final) = {outcomes}"


def test_the_target_network_is_synced_every_target_update_interval_env_steps_once_learning_runs(tmp_path, monkeypatch):
    """tau 1: a hard copy each time the env-step count crosses a multiple of target_update_interval, skipped
    while no update has changed the weights (before learning_starts)."""
    from rlsuite import runs
    from rlsuite.agents import dqn

    syncs = []
    real = dqn.update_target
    monkeypatch.setattr(dqn, "update_target", lambda *a, **k: (syncs.append(1), real(*a, **k))[1])
    overrides = {"learning_starts": 250, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 100,
                 "hidden": "16,16", "eval_every": 600, "eval_episodes": 1, "final_eval_episodes": 1, "buffer_size": 1000}
    runs.train("dqn", "CartPole-v1", steps=600, overrides=overrides, out=tmp_path, progress=False)
    assert len(syncs) == 4  # at 300, 400, 500 and 600; at 100 and 200 nothing had been learned


def test_epsilon_at_a_given_step_follows_the_schedule_after_learning_starts(tmp_path):
    """ε is 1 (uniform random actions) before learning_starts, then the schedule over training progress: with
    {linear: [1.0, 0.0, 0.5]} over 2,000 steps, the step that ends at env step s acts with ε = 1 - ((s-1)/2000)/0.5
    until it reaches 0 at half the budget. Read back from the logged charts/epsilon."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = {**TINY_DQN, "learning_starts": "150", "log_every": "100", "epsilon": "{linear: [1.0, 0.0, 0.5]}",
                 "eval_every": "2000"}
    summary = runs.train("dqn", "CartPole-v1", steps=2000, overrides=overrides, out=tmp_path, progress=False)
    acc = EventAccumulator(summary["run_dir"])
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("charts/epsilon")}
    assert logged[100] == 1.0  # before learning_starts
    assert logged[200] == pytest.approx(1 - (199 / 2000) / 0.5, abs=1e-6)
    assert logged[600] == pytest.approx(1 - (599 / 2000) / 0.5, abs=1e-6)
    assert logged[1100] == 0.0 and logged[2000] == 0.0
