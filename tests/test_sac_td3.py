"""SAC and TD3: the squashed Gaussian, the temperature, TD3's targets and delays, bad input, determinism,
exact resume, and a learning test."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.distributions import Normal

from conftest import assert_one_line_error, metrics_without_wall
from rlsuite import runs
from rlsuite.agents.sac_td3 import SACConfig, TD3Config, sac_update, smoothed_target_actions, td3_update
from rlsuite.agents.sac_td3 import build_learner as build_population
from rlsuite.learn.nets import MemberLinear
from rlsuite.learn.optim import MemberDivergenceGuard


def build_learner(cfg, obs_dim, act_dim, device, seed=0):
    """A population of one (the updates take a leading member axis), initialised from `seed`."""
    return build_population(cfg, obs_dim, act_dim, device, [seed])


def one_update(cfg, nets, opts, batch, update, noise_seed=1):
    """One sac_update / td3_update of a population of one; its noise from a generator seeded noise_seed."""
    nets["updates"] = update
    g = torch.Generator().manual_seed(noise_seed)
    n = batch["obs"].shape[1]
    noise = lambda *shape: torch.randn((1, n, *shape), generator=g)  # noqa: E731
    fn = sac_update if isinstance(cfg, SACConfig) else td3_update
    stats = fn(cfg, nets, opts, batch, MemberDivergenceGuard(1), torch.ones(1), noise)
    return {k: v[0] for k, v in stats.items()}
from rlsuite.run.checkpoint import load_checkpoint
from rlsuite.core.errors import UserError
from rlsuite.cli import main
from rlsuite.learn.nets import MLP, DeterministicTanhHead, EnsembleMLP, TanhGaussianHead, matmul_precision, squashed_log_prob
from rlsuite.learn.optim import gradient_step

TINY = {"learning_starts": "100", "batch_size": "32", "hidden": "16,16", "eval_every": "300", "eval_episodes": "2",
        "final_eval_episodes": "2", "checkpoint_every": "400", "log_every": "100", "buffer_size": "5000"}


def test_tanh_gaussian_log_prob_is_the_change_of_variables():
    mean, std = torch.tensor([[0.3, -1.2]], dtype=torch.float64), torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    u = torch.tensor([[0.1, 3.0]], dtype=torch.float64)
    a = torch.tanh(u)
    # log p(a) = log N(u; mean, std) - log |da/du|,  da/du = 1 - tanh(u)^2, per dimension, summed
    direct = sum(-((u[0, i] - mean[0, i]) ** 2) / (2 * std[0, i] ** 2) - torch.log(std[0, i]) - 0.5 * math.log(2 * math.pi)
                 - torch.log(1 - a[0, i] ** 2) for i in range(2))
    assert squashed_log_prob(Normal(mean, std), u).item() == pytest.approx(direct.item(), rel=1e-9)
    # and it is a density on (-1, 1): it integrates to 1 (1-D, midpoint rule in u-space covers the tails)
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    du = grid[1] - grid[0]
    normal = Normal(torch.tensor(0.4, dtype=torch.float64), torch.tensor(1.3, dtype=torch.float64))
    logp = normal.log_prob(grid) - 2 * (math.log(2) - grid - torch.nn.functional.softplus(-2 * grid))
    da = (1 - torch.tanh(grid) ** 2) * du
    assert float((logp.exp() * da).sum()) == pytest.approx(1.0, abs=1e-6)
    head = TanhGaussianHead(3, 2)
    actions, logp = head(torch.randn(5, 3))
    # tanh saturates to exactly ±1 in float32; the log-prob stays finite all the same (the stable form)
    assert actions.abs().max() <= 1 and logp.shape == (5,) and torch.isfinite(logp).all()


@pytest.mark.parametrize("log_std_bias, floor", [(0.0, None), (-25.0, -20.0), (9.0, 2.0)])
def test_tanh_gaussian_head_samples_and_rates_its_actions(log_std_bias, floor):
    """The head SAC acts and learns with: a = tanh(u), u ~ N(W x + b, exp(clamp(V x + c, -20, 2))), and the
    log-prob it returns is the change of variables at that u, computed here from the action alone (u =
    atanh a, in float64) and the layers' weights; the log-std outside [-20, 2] is clamped (SAC's code, SB3)."""
    torch.manual_seed(0)
    head = TanhGaussianHead(3, 2)
    with torch.no_grad():
        head.log_std.weight.zero_()
        head.log_std.bias.fill_(log_std_bias)
        if floor is not None:  # u near 0: tanh keeps its digits (std e^-20) and few actions saturate (std e^2)
            head.mean.weight.zero_()
            head.mean.bias.zero_()
    x = torch.randn(4000, 3)
    with torch.no_grad():
        actions, logp = head(x)
    a = actions.double()
    keep = (a.abs() < 0.99).all(-1)  # atanh of a float32 action near ±1 loses the digits this needs
    assert keep.sum() > 100
    mean = (x.double() @ head.mean.weight.double().T + head.mean.bias.double())[keep]
    log_std = torch.full_like(mean, log_std_bias if floor is None else floor)
    u = torch.atanh(a[keep])
    direct = (-((u - mean) ** 2) / (2 * log_std.exp() ** 2) - log_std - 0.5 * math.log(2 * math.pi)
              - torch.log(1 - a[keep] ** 2)).sum(-1)
    assert torch.allclose(logp.double()[keep], direct, rtol=1e-4, atol=1e-3 if floor == 2.0 else 1e-4)
    if floor != 2.0:  # (at std e^2 only the unsaturated samples are kept: their spread is cut)
        z = (u - mean) / log_std.exp()  # the samples follow the clamped std, not the unclamped one
        assert 0.9 < float(z.std()) < 1.1 and abs(float(z.mean())) < 0.1


def test_ensemble_member_is_a_plain_mlp():
    ens = EnsembleMLP(4, (8, 8), 1, members=2)
    x = torch.randn(5, 4)
    out = ens(x)
    assert out.shape == (2, 5, 1)
    for k in range(2):
        h = x
        for i, (w, b) in enumerate(zip(ens.weights, ens.biases)):
            h = h @ w[k] + b[k]
            h = torch.relu(h) if i < 2 else h
        assert torch.allclose(out[k], h, atol=1e-6)


@pytest.mark.parametrize("cls", [SACConfig, TD3Config])
def test_actor_init_torch_is_a_plain_linear_stack_and_orthogonal_stays_the_default(cls):
    # actor_init=torch removes the one initialisation difference from SB3: under one torch seed the actor's
    # trunk is what nn.Linear layers built in the same order draw (SB3's actors); the default is unchanged
    torch.manual_seed(3)
    plain = [torch.nn.Linear(5, 16), torch.nn.Linear(16, 16)]
    nets, _ = build_learner(cls(hidden=(16, 16), actor_init="torch"), 5, 2, "cpu", seed=3)
    linears = [m for m in nets["actor"][0].modules() if isinstance(m, MemberLinear)]
    assert len(linears) == 2
    for ours, theirs in zip(linears, plain):
        assert torch.equal(ours.weight[0], theirs.weight) and torch.equal(ours.bias[0], theirs.bias)
    nets, _ = build_learner(cls(hidden=(16, 16)), 5, 2, "cpu", seed=3)
    w = [m for m in nets["actor"][0].modules() if isinstance(m, MemberLinear)][1].weight[0]
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(16), atol=1e-5)  # orthogonal, gain sqrt(2)


@pytest.mark.parametrize("agent, overrides, says_init, says_eps", [
    ("sac", {}, True, True), ("td3", {"log_every": "100"}, True, False),
    ("sac", {"actor_init": "torch"}, False, True), ("sac", {"tanh_eps": "1e-6"}, True, False),
    ("sac", {"actor_init": "torch", "tanh_eps": "1e-6"}, False, False), ("ppo", {}, False, False)])
def test_compare_states_each_difference_from_sb3_until_it_is_removed(agent, overrides, says_init, says_eps):
    from rlsuite.experiments.compare import differences

    notes = differences(agent, "Pendulum-v1", overrides, [])
    assert any("actor_init=torch removes the difference" in n for n in notes) == says_init
    assert any("tanh_eps=1e-6 removes the difference" in n for n in notes) == says_eps


def test_sb3s_squashing_term_stops_at_log_eps_once_an_action_saturates():
    # SB3 (and CleanRL, and the SAC authors' code) rate a = tanh(u) with log N(u) - log(1 - a² + 1e-6); rlsuite's
    # default is the exact log N(u) - log(1 - tanh(u)²). Hand values: at u = 0.5 the two agree to 2e-6 relative;
    # at u = 20, 1 - tanh(20)² = 4 e^-40 ≈ 1.7e-17, so SB3's term is log(1e-6) = -13.8155 and the exact one
    # 2 (log 2 - 20 - softplus(-40)) = -38.6137: a saturated action is rated 24.8 nats likelier by the exact form.
    normal = Normal(torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    gauss = normal.log_prob(torch.tensor([20.0], dtype=torch.float64)).item()
    u = torch.tensor([[20.0]], dtype=torch.float64)
    assert squashed_log_prob(normal, u, 1e-6).item() == pytest.approx(gauss + 13.815510, abs=1e-5)
    assert squashed_log_prob(normal, u).item() == pytest.approx(gauss + 38.613706, abs=1e-5)
    u = torch.tensor([[0.5]], dtype=torch.float64)
    hand = normal.log_prob(u).item() - math.log(1 - math.tanh(0.5) ** 2 + 1e-6)
    assert squashed_log_prob(normal, u, 1e-6).item() == pytest.approx(hand, rel=1e-12)
    assert squashed_log_prob(normal, u).item() == pytest.approx(hand, rel=1e-5)
    # the gradient that pulls a saturated u back: 2 per unit of u for the exact term, none left for SB3's
    for eps, pull in ((0.0, 2.0), (1e-6, 0.0)):
        u = torch.tensor([[20.0]], dtype=torch.float64, requires_grad=True)
        (squashed_log_prob(normal, u, eps) - normal.log_prob(u).sum()).backward()
        assert u.grad.item() == pytest.approx(pull, abs=1e-9)
    # SB3's own distribution on float32 draws, some saturated: rlsuite with tanh_eps=1e-6 rates them as SB3 does
    from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution

    mean, log_std = torch.tensor([[0.3, -2.0, 9.0]]), torch.tensor([[-1.0, 0.5, 0.2]])
    u = torch.tensor([[0.1, -4.0, 12.0]])  # the last one saturates: tanh(12) is 1.0 in float32
    sb3 = SquashedDiagGaussianDistribution(3).proba_distribution(mean, log_std).log_prob(torch.tanh(u), u)
    ours = squashed_log_prob(Normal(mean, log_std.exp()), u, 1e-6)
    assert ours.item() == pytest.approx(sb3.item(), rel=1e-6)
    # the exact term rates them 2 (12 - log 2) + log 1e-6 = 8.7982 nats likelier at u = 12, plus
    # log(1 + 1e-6 / sech²(4)) = 0.0007 at u = -4
    assert squashed_log_prob(Normal(mean, log_std.exp()), u).item() == pytest.approx(sb3.item() + 8.7989, abs=2e-3)
    # the card's setting reaches the actor SAC learns with; a bad one is refused in one line
    nets, _ = build_learner(SACConfig(hidden=(16, 16), tanh_eps=1e-6), 5, 2, "cpu")
    assert nets["actor"][1].eps == 1e-6 and torch.isfinite(nets["actor"][1](torch.randn(1, 4, 16))[1]).all()
    assert build_learner(SACConfig(hidden=(16, 16)), 5, 2, "cpu")[0]["actor"][1].eps == 0.0
    with pytest.raises(UserError, match="tanh_eps"):
        SACConfig(tanh_eps=-1e-6).validate()


def test_actor_init_rejects_an_unknown_scheme_in_one_line(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["train", "sac", "Pendulum-v1", "--steps", "100", "--set", "actor_init=xavier",
                                       "--out", str(tmp_path)])
    assert_one_line_error(result, "actor_init")


def test_detached_critic_weights_pass_the_same_gradient_to_the_actions():
    ens = EnsembleMLP(5, (8, 8), 1, members=2, activation="tanh")
    x = torch.randn(7, 5, requires_grad=True)
    g_plain = torch.autograd.grad(ens(x).sum(), x)[0]
    y = ens(x, detach_weights=True).sum()
    g_detached = torch.autograd.grad(y, x)[0]
    assert torch.allclose(g_plain, g_detached)
    y = ens(x, detach_weights=True).sum()
    y.backward()
    assert all(w.grad is None for w in ens.weights)  # no weight gradients computed


def test_first_member_alone_is_the_same_q1_for_less_arithmetic():
    """TD3's actor reads Q_1 only: first=1 gives Q_1's values and the same action gradient as the full
    ensemble's member 0, without computing Q_2 (before, both members were run and Q_2 thrown away)."""
    ens = EnsembleMLP(5, (8, 8), 1, members=2)
    x = torch.randn(7, 5, requires_grad=True)
    full = ens(x, detach_weights=True)
    alone = ens(x, detach_weights=True, first=1)
    assert alone.shape == (1, 7, 1)
    assert torch.allclose(alone[0], full[0])
    g_full = torch.autograd.grad(full[0].sum(), x)[0]
    g_alone = torch.autograd.grad(alone[0].sum(), x)[0]
    assert torch.allclose(g_full, g_alone)


def test_bf16_runs_the_hidden_layers_in_bf16_and_every_output_in_fp32():
    """precision=bf16: hidden matmuls in bfloat16, outputs in float32. An output layer run in bf16 would round
    a Q near 300 to a multiple of 2 (8 significant bits) before the loss sees it; in float32 it is not rounded
    (the hidden layers' rounding, which remains, is the same in both, so the bias carries the 300 here)."""
    torch.manual_seed(0)
    ens = EnsembleMLP(5, (64, 64), 1, members=2)
    with torch.no_grad():
        ens.biases[-1].fill_(300.0)
    x = torch.randn(32, 5)
    exact = ens(x)
    with matmul_precision("bf16", "cpu"):
        hidden = torch.relu(torch.baddbmm(ens.biases[0], x.expand(2, 32, 5), ens.weights[0]))
        q = ens(x)
        trunk = MLP(5, (16,))
        features = trunk(x)
        head = TanhGaussianHead(16, 2)
        actions, logp = head(features)
        mu = DeterministicTanhHead(16, 2)(features)
    assert hidden.dtype == torch.bfloat16 and features.dtype == torch.bfloat16  # the speed: bf16 GEMMs
    assert q.dtype == actions.dtype == logp.dtype == mu.dtype == torch.float32
    assert (q - exact).abs().max() < 0.05  # a bf16 output would be off by up to 1 (and every q even)
    assert torch.is_autocast_enabled("cpu") is False  # the context ends with the update
    assert matmul_precision("fp32", "cpu").__class__.__name__ == "nullcontext"


def test_under_bf16_the_output_layers_backward_runs_in_fp32():
    """gradient_step runs backward outside autocast: the output layer's weight gradient is the float32 product
    of its (bf16-computed) input and the loss gradient. Before, backward ran inside the autocast, so that
    product ran as a bf16 matmul and came back rounded to 8 significant bits."""
    torch.manual_seed(0)
    ens = EnsembleMLP(5, (64, 64), 1, members=2)
    x = torch.randn(32, 5)
    opt = torch.optim.SGD(ens.parameters(), lr=0.0)
    with matmul_precision("bf16", "cpu"):
        h = x.expand(2, 32, 5)
        for w, b in zip(list(ens.weights)[:-1], list(ens.biases)[:-1]):
            h = torch.relu(torch.baddbmm(b, h, w))  # the last layer's input, as the forward pass computes it
        loss = ens(x).sum()  # dloss/dq = 1, so the last weight's gradient is the column sum of h
        gradient_step(opt, loss, None)
    expected = h.float().sum(dim=1).unsqueeze(-1)
    assert torch.allclose(ens.weights[-1].grad, expected, rtol=1e-5, atol=1e-5)


def test_bf16_is_native_only_with_bf16_units(monkeypatch):
    from rlsuite.learn import nets

    monkeypatch.setattr(nets.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)  # e.g. Skylake/Cascade Lake AVX-512
    assert nets.bf16_is_native("cpu") is False  # before: oneDNN's check, true on any AVX-512 CPU, emulating bf16
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert nets.bf16_is_native("cpu") is True
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: emulated
    assert nets.bf16_is_native("cuda") is False
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert nets.bf16_is_native("cuda") is True


@pytest.mark.parametrize("cls", [SACConfig, TD3Config])
def test_a_bf16_update_follows_the_fp32_update(cls):
    """Same networks, same batch: one update under bf16 gives losses within 2% of fp32's (or 1e-3 of a loss near 0), and moves the
    critics' weights the same way (Adam's first step is a sign step, so the signs agree almost everywhere)."""
    steps = {}
    for precision in ("fp32", "bf16"):
        cfg = cls(hidden=(64, 64), precision=precision)
        nets, opts = build_learner(cfg, 3, 2, "cpu")
        before = [p.detach().clone() for p in nets["critics"].parameters()]
        with matmul_precision(precision, "cpu"):  # the same policy samples and smoothing noise
            stats = one_update(cfg, nets, opts, _batch(), 2)
        moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(nets["critics"].parameters(), before)])
        steps[precision] = stats, moved
    (s32, m32), (s16, m16) = steps["fp32"], steps["bf16"]
    for key in ("critic_loss", "actor_loss"):
        assert float(s16[key]) == pytest.approx(float(s32[key]), rel=0.02, abs=1e-3)
    assert (torch.sign(m16) == torch.sign(m32)).float().mean() > 0.95


def test_bf16_without_native_support_says_it_is_slower(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import rlsuite.runs

    monkeypatch.setattr(rlsuite.runs, "bf16_is_native", lambda device: False)
    result = CliRunner().invoke(main, ["train", "sac", "Pendulum-v1", "--steps", "200", "--set", "precision=bf16",
                                       "--out", str(tmp_path), "--quiet", *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]])
    assert result.exit_code == 0, result.output
    assert "emulated, slower than fp32; --set precision=fp32" in result.output
    # moved to such a machine, a resumed run keeps its precision: the note says what would help instead
    run_dir = next((tmp_path / "runs").iterdir())
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--steps", "300", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "a resumed run keeps its precision; a new run with --set precision=fp32" in result.output
    result = CliRunner().invoke(main, ["train", "sac", "Pendulum-v1", "--set", "precision=fp16", "--out", str(tmp_path)])
    assert_one_line_error(result, "precision='fp16' is not one of fp32, bf16")
    # another agent's setting: named as such (before: "unknown hyperparameter ... did you mean: activation?")
    result = CliRunner().invoke(main, ["train", "ppo", "CartPole-v1", "--set", "precision=bf16", "--out", str(tmp_path)])
    assert_one_line_error(result, "'precision' is a setting of sac, td3, not of ppo")


def _batch(obs_dim=3, act_dim=2, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {"obs": torch.randn(n, obs_dim, generator=g), "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
             "rewards": torch.randn(n, generator=g), "next_obs": torch.randn(n, obs_dim, generator=g),
             "discounts": torch.full((n,), 0.99)}
    return {k: v[None] for k, v in batch.items()}  # a population of one: (1, n, ...)


# std e^-5: a narrow policy, entropy far below the target -dim(A) = -2, so α must rise; std 1: after tanh
# nearly uniform on [-1, 1] (entropy about +1 for two dimensions), so α must fall. (A much wider Gaussian
# would pile its mass on ±1 after tanh: low entropy again.)
@pytest.mark.parametrize("log_std_bias, direction", [(-5.0, 1), (0.0, -1)])
def test_entropy_temperature_rises_when_entropy_is_low_and_falls_when_high(log_std_bias, direction):
    cfg = SACConfig(hidden=(16, 16))
    nets, opts = build_learner(cfg, 3, 2, "cpu")
    with torch.no_grad():  # a narrow (low-entropy) or a wide (high-entropy) policy
        head = nets["actor"][1]
        head.log_std.weight.zero_()
        head.log_std.bias.fill_(log_std_bias)
    before = nets["log_alpha"].item()
    one_update(cfg, nets, opts, _batch(), 1)
    assert np.sign(nets["log_alpha"].item() - before) == direction  # target entropy -dim(A) = -2


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_td3_targets_by_hand_and_delayed_updates(smoothing):
    """y = r + d min_k Q'_k(s', a'), a' = clip(μ'(s') + clip(ε, -c, c), -1, 1), ε ~ N(0, σ'²): computed here
    from the target networks and the same random draws (σ' 0.3 with c 0.1 clips most of them)."""
    cfg = TD3Config(hidden=(16, 16), target_policy_noise=smoothing, target_noise_clip=0.1, tau=0.5, policy_delay=2)
    nets, opts = build_learner(cfg, 3, 2, "cpu", seed=1)
    batch = _batch()
    with torch.no_grad():
        # the update draws its smoothing noise first, from its generator (seeded 7 here): the same numbers
        a2 = nets["actor_target"](batch["next_obs"])
        a2 = (a2 + (torch.randn(a2.shape, generator=torch.Generator().manual_seed(7)) * smoothing).clamp(-0.1, 0.1)
              ).clamp(-1.0, 1.0)
        q_next = nets["critics_target"](torch.cat([batch["next_obs"], a2], -1)).squeeze(-1).min(-2).values  # (1, n)
        y = batch["rewards"] + batch["discounts"] * q_next
        q = nets["critics"](torch.cat([batch["obs"], batch["actions"]], -1)).squeeze(-1)  # (1, 2, n)
        expected = ((q - y[:, None]) ** 2).mean(-1).sum()
    actor0 = [p.clone() for p in nets["actor"].parameters()]
    target0 = [p.clone() for p in nets["critics_target"].parameters()]
    actor_target0 = [p.clone() for p in nets["actor_target"].parameters()]
    stats = one_update(cfg, nets, opts, batch, 1, noise_seed=7)
    assert stats["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert "actor_loss" not in stats  # update 1 of policy_delay 2: the actor and the targets wait
    assert all(torch.equal(a, b) for a, b in zip(actor0, nets["actor"].parameters()))
    assert all(torch.equal(a, b) for a, b in zip(target0, nets["critics_target"].parameters()))
    stats = one_update(cfg, nets, opts, batch, 2, noise_seed=7)
    assert "actor_loss" in stats
    assert not all(torch.equal(a, b) for a, b in zip(actor0, nets["actor"].parameters()))
    for old, target, online in zip(target0, nets["critics_target"].parameters(), nets["critics"].parameters()):
        assert torch.allclose(target, 0.5 * old + 0.5 * online)  # Polyak with tau 0.5
    for old, target, online in zip(actor_target0, nets["actor_target"].parameters(), nets["actor"].parameters()):
        assert torch.allclose(target, 0.5 * old + 0.5 * online)  # the actor's target too, on the delayed step


def test_td3_target_smoothing_noise_is_clipped_and_actions_stay_in_bounds():
    cfg = TD3Config(target_policy_noise=100.0, target_noise_clip=0.05)
    mu = torch.tensor([[0.5, -0.2, 0.99]]).repeat(1000, 1)
    a = smoothed_target_actions(mu, cfg, torch.randn_like(mu))
    assert (a - mu).abs().max() <= 0.05 + 1e-6 and a.max() <= 1.0
    assert (a[:, 2] == 1.0).any()  # 0.99 + up to 0.05 is clipped to the bound


@pytest.mark.parametrize("env_id, fragment", [("CartPole-v1", "needs continuous (Box) actions"),
                                              ("toy_envs:UnboundedActions-v0", "bounds, but they are infinite"),
                                              ("toy_envs:MatrixActions-v0", "needs a flat Box action vector"),
                                              ("toy_envs:DictObsBoxActions-v0", "needs Box (array) observations")])
@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_unsupported_action_spaces_are_one_line_errors(tmp_path, agent, env_id, fragment):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["train", agent, env_id, "--steps", "100", "--out", str(tmp_path)])
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_baseline_on_a_discrete_env_names_the_agent_asked_for(tmp_path, agent):
    # the baseline path checks spaces before any config exists: the message names the agent, not "SAC/TD3"
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["baseline", agent, "CartPole-v1", "--steps", "100", "--out", str(tmp_path)])
    assert_one_line_error(result, f"{agent.upper()} needs continuous (Box) actions")


@pytest.mark.parametrize("agent, env_id, settings", [("sac", "Pendulum-v1", {}), ("td3", "Pendulum-v1", {}),
                                                      ("sac", "Hopper-v5", {}), ("td3", "Pendulum-v1", {"precision": "bf16"}),
                                                      ("sac", "Pendulum-v1", {"actor_init": "torch", "tanh_eps": 1e-6})])
def test_determinism_and_exact_resume(tmp_path, agent, env_id, settings):
    # Hopper: the MuJoCo simulator's state is checkpointed (mj_getState), so its episodes continue exactly
    pytest.importorskip("mujoco") if env_id == "Hopper-v5" else None
    kw = dict(seed=2, steps=800, overrides={**TINY, **settings}, progress=False)
    a = runs.train(agent, env_id, out=tmp_path / "a", **kw)
    b = runs.train(agent, env_id, out=tmp_path / "b", **kw)
    rows = metrics_without_wall(a["run_dir"])
    assert len(rows) > 5 and any(r["eval_mean"] for r in rows)
    assert rows == metrics_without_wall(b["run_dir"])
    stopped = runs.train(agent, env_id, out=tmp_path / "c", stop_at=400, **kw)
    assert stopped["status"] == "interrupted"
    resumed = runs.resume(stopped["run_dir"], progress=False)
    assert metrics_without_wall(resumed["run_dir"]) == rows
    assert resumed["final_eval"]["returns"] == a["final_eval"]["returns"]
    w1 = load_checkpoint(Path(a["run_dir"]) / "checkpoints" / "last.pt")["state"]["critics"]
    w2 = load_checkpoint(Path(resumed["run_dir"]) / "checkpoints" / "last.pt")["state"]["critics"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


@pytest.mark.learning
def test_sac_learns_pendulum_on_a_quorum_of_seeds(tmp_path):
    """SAC on Pendulum-v1 (the card's values, lr 1e-3, with 64x64 networks and batch 128 to keep CI short):
    the final 20-episode evaluation at 15k steps beats -300 (a random policy scores about -1200) on 2 of
    seeds 0-2. A quorum, because another CPU's float kernels send a seed down another trajectory."""
    passed = 0
    for seed in range(3):
        summary = runs.train("sac", "Pendulum-v1", seed=seed, steps=15_000, out=tmp_path, progress=False,
                             overrides={"hidden": "64,64", "batch_size": "128", "eval_every": "5000"})
        passed += summary["final_eval"]["mean"] > -300
        if passed == 2:
            break
    assert passed >= 2


def test_cards_run_the_zoos_values_where_they_say_so():
    from rlsuite.experiments.compare import differences_from_zoo

    for agent, env_id in (("sac", "Pendulum-v1"), ("td3", "Pendulum-v1"), ("sac", "Hopper-v5"), ("td3", "HalfCheetah-v5"),
                          ("ppo", "Hopper-v5"), ("ppo", "HalfCheetah-v5"), ("ppo", "Walker2d-v5"),
                          ("sac", "MountainCarContinuous-v0"), ("td3", "MountainCarContinuous-v0")):
        assert differences_from_zoo(agent, env_id) == {}, (agent, env_id)
    # the zoo updates TD3 once per LunarLanderContinuous episode; a fixed train_freq cannot, and the table says so
    assert set(differences_from_zoo("td3", "LunarLanderContinuous-v3")) == {"train_freq", "gradient_steps"}


def test_a_repeated_mujoco_warning_is_printed_once(capfd):
    """MuJoCo 4 warns about HalfCheetah's deprecated 'settotalmass' at every model compile: 22 lines a run."""
    mujoco = pytest.importorskip("mujoco")
    if int(mujoco.__version__.split(".")[0]) < 4:
        pytest.skip("MuJoCo 3 does not emit this warning")
    from rlsuite.envs import make as envs
    from rlsuite.config.cards import load_env_card

    envs._MUJOCO_SEEN.clear()
    card = load_env_card("HalfCheetah-v5")
    for _ in range(3):
        envs.make_env(card).close()
    out, err = capfd.readouterr()
    assert "settotalmass" not in out
    assert err.count("settotalmass") == 1 and "MuJoCo warning (shown once):" in err


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_the_rest_of_rlsuite_takes_them_unchanged(tmp_path, agent):
    """SAC and TD3 through every command: baseline, compare, plot, sweep, eval (with --video) and tune, through the CLI, on tiny budgets."""
    from click.testing import CliRunner

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    result = invoke("baseline", agent, "Pendulum-v1", "--steps", 300, "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    result = invoke("compare", agent, "Pendulum-v1", "--seeds", 1, "--steps", 400, "--out", tmp_path / "c", *sets)
    assert result.exit_code == 0, result.output
    assert "| rlsuite |" in result.output and "| sb3 |" in result.output
    report = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    # a setting only rlsuite has is stated in the saved report too, not only on the terminal
    assert "rlsuite only (SB3 has no such setting): log_every=100" in report.read_text()  # hidden: both sides
    assert "--set actor_init=torch removes the difference" in report.read_text()
    run_dirs = sorted(report.parent.glob("runs/*"))
    assert [p.name.split("-")[0] for p in run_dirs] == ["rlsuite", "sb3"]
    assert invoke("plot", *run_dirs, "-o", tmp_path / "curves.png").exit_code == 0
    assert (tmp_path / "curves.png").stat().st_size > 0

    rlsuite_run = run_dirs[0]
    result = invoke("eval", rlsuite_run, "--episodes", 1, "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)["returns"]) == 1
    pytest.importorskip("moviepy")
    result = invoke("eval", rlsuite_run, "--episodes", 1, "--video", tmp_path / "videos")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1

    result = invoke("sweep", agent, "Pendulum-v1", "--seeds", 1, "--steps", 300, "--workers", 1,
                    "--out", tmp_path / "s", *sets, "--set", "lr=1e-3,3e-4")
    assert result.exit_code == 0 and "2 runs finished, 0 failed" in result.output, result.output

    # the card's own search space (the --set fields above are fixed, so it searches lr, gamma, tau, ...)
    result = invoke("tune", agent, "Pendulum-v1", "--trials", 2, "--seeds", 1, "--steps", 300, "--workers", 1,
                    "--out", tmp_path / "t", "--no-reference", *sets)
    assert result.exit_code == 0, result.output
    best = yaml.safe_load((tmp_path / "t" / "tune" / f"{agent}-Pendulum-v1" / "best.yaml").read_text())["Pendulum-v1"]
    assert {"lr", "gamma", "tau"} <= set(best) and best["hidden"] == [16, 16]  # searched, and fixed by --set


@pytest.mark.parametrize("agent, env_id, overrides, sb3, ours_only", [
    # TD3's exploration noise is SB3's noise_std; SB3's SAC and TD3 clip no gradients; hidden is net_arch
    ("td3", "Pendulum-v1", {"action_noise": "0.2", "max_grad_norm": "10", "hidden": "64,64"},
     {"noise_type": "normal", "noise_std": 0.2, "net_arch": [64, 64]}, ["max_grad_norm"]),
    ("td3", "Pendulum-v1", {"action_noise": "0"}, {"noise_type": None, "noise_std": 0.0}, []),
    # SAC's tuned α and its start are SB3's one ent_coef ("auto_<start>"); target_entropy keeps its name
    ("sac", "Hopper-v5", {"ent_coef_init": "0.1", "target_entropy": "-2"},
     {"ent_coef": "auto_0.1", "target_entropy": -2.0}, []),
    ("sac", "Hopper-v5", {"ent_coef": "null"}, {"ent_coef": "auto"}, []),
    ("sac", "Hopper-v5", {"ent_coef": "0.2", "ent_coef_init": "0.5"}, {"ent_coef": 0.2}, []),
    # actor_init=torch is what SB3 does anyway; orthogonal is rlsuite's alone
    ("sac", "Hopper-v5", {"actor_init": "torch"}, {}, []),
    ("td3", "Hopper-v5", {"actor_init": "orthogonal"}, {}, ["actor_init"]),
    # SB3's squashed Gaussian always adds 1e-6 inside its log; the exact term (0) is rlsuite's alone
    ("sac", "Hopper-v5", {"tanh_eps": "1e-6"}, {}, []),
    ("sac", "Hopper-v5", {"tanh_eps": "0"}, {}, ["tanh_eps"]),
    # PPO: one size list for actor and critic; log_std_init joins the card's other policy_kwargs
    ("ppo", "Hopper-v5", {"hidden": "64,64", "log_std_init": "-1", "max_grad_norm": "1"},
     {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "policy_kwargs": {"log_std_init": -1.0, "ortho_init": False},
      "max_grad_norm": 1}, []),
])
def test_compare_set_reaches_sb3_in_its_own_names(agent, env_id, overrides, sb3, ours_only):
    """`compare --set` changes SB3 too wherever SB3 has the setting, under its own name and form; before, these
    were reported as rlsuite-only (or, max_grad_norm on SAC, failed inside SB3 after rlsuite's first run)."""
    from rlsuite.sb3.hyperparameters import baseline_hyperparameters, sb3_overrides_for

    assert sb3_overrides_for(overrides, agent, baseline_hyperparameters(agent, env_id)[0]) == (sb3, ours_only)


def test_compare_set_max_grad_norm_on_sac_trains_both_sides(tmp_path):
    """The late failure the old mapping had: SB3's SAC got max_grad_norm and raised after rlsuite's run."""
    from click.testing import CliRunner

    sets = [a for k, v in {**TINY, "max_grad_norm": "10"}.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["compare", "sac", "Pendulum-v1", "--seeds", "1", "--steps", "300", "--out",
                                       str(tmp_path), *sets])
    assert result.exit_code == 0, result.output
    assert "rlsuite only (SB3 has no such setting): log_every=100, max_grad_norm=10" in result.output


def test_compare_trains_both_sides_for_the_same_steps(tmp_path):
    """Without --steps, SB3 trains as long as rlsuite's card says: before, `--set total_steps=300` (or an env
    with no zoo values, such as TD3 on MountainCarContinuous before its card) left SB3 at another budget."""
    from click.testing import CliRunner

    # one update per step on both sides (the card's SB3 side updates per 200-step episode: it would end at 400)
    sets = [a for k, v in {**TINY, "total_steps": "300", "train_freq": "1", "gradient_steps": "1"}.items()
            for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["compare", "td3", "Pendulum-v1", "--seeds", "1", "--out", str(tmp_path), *sets])
    assert result.exit_code == 0, result.output
    assert "total_steps" not in result.output.split("rlsuite only")[-1].splitlines()[0]
    steps = {p.name.split("-")[0]: json.loads((p / "summary.json").read_text())["steps"]
             for p in tmp_path.glob("runs/compare-*/runs/*")}
    assert steps == {"rlsuite": 300, "sb3": 300}


def test_sac_critic_target_by_hand_with_the_pre_update_alpha():
    """y = r + d (min_k Q'_k(s', a') - α log π(a'|s')), a' = tanh(u), u = μ(s') + σ(s') ε, with the exact
    change of variables log π = Σ log N(u; μ, σ) - log(1 - tanh²u), and the α from before this update's own
    temperature step (SB3's order). A wrong sign of the entropy term or the updated α would not match."""
    cfg = SACConfig(hidden=(16, 16))
    nets, opts = build_learner(cfg, 3, 2, "cpu", seed=2)
    with torch.no_grad():
        nets["log_alpha"].fill_(math.log(0.5))
    batch = _batch()
    g = torch.Generator().manual_seed(7)
    n = batch["obs"].shape[1]
    torch.randn((1, n, 2), generator=g)  # the first draw samples ã on s for α and the actor
    eps_next = torch.randn((1, n, 2), generator=g)  # the second a' on s'
    with torch.no_grad():
        normal = nets["actor"][1].distribution(nets["actor"][0](batch["next_obs"]))
        u = normal.loc + normal.scale * eps_next
        logp = (normal.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
        q_next = nets["critics_target"](torch.cat([batch["next_obs"], torch.tanh(u)], -1)).squeeze(-1).min(-2).values
        y = batch["rewards"] + batch["discounts"] * (q_next - 0.5 * logp)
        q = nets["critics"](torch.cat([batch["obs"], batch["actions"]], -1)).squeeze(-1)  # (1, 2, n)
        expected = 0.5 * ((q - y[:, None]) ** 2).mean(-1).sum()
    stats = one_update(cfg, nets, opts, batch, 1, noise_seed=7)
    assert stats["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert nets["log_alpha"].item() != pytest.approx(math.log(0.5))  # α moved in this update, after the target
