"""The shared optimisation pieces: clipped gradient step, target updates, the divergence guard."""

import pytest
import torch
from torch import nn

from rlsuite.learn.optim import Diverged, DivergenceGuard, gradient_step, update_target


def test_gradient_step_clips_the_global_norm_then_steps():
    torch.manual_seed(0)
    net = nn.Linear(5, 3)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    loss = (net(torch.randn(4, 5)) ** 2).sum() * 100  # a gradient far above norm 1
    gradient_step(opt, loss, max_grad_norm=1.0)
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert torch.linalg.vector_norm(grads) == pytest.approx(1.0, rel=1e-4)
    # SGD with lr 1: the parameters moved by exactly the clipped gradient
    moved = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, net.parameters())])
    assert torch.allclose(moved, grads, atol=1e-6)


def test_update_target_hard_and_polyak():
    net, target = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
        for p in target.parameters():
            p.fill_(0.0)
    update_target(net, target, tau=0.25)  # 0.75 * 0 + 0.25 * 1
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in target.parameters())
    update_target(net, target, tau=1.0)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), target.parameters()))


def test_divergence_guard_names_the_update_and_the_checkpoint():
    guard = DivergenceGuard()
    guard.watch(torch.tensor(1.0), torch.tensor(2.0))
    guard.check("dqn", 7, 100, "the last good checkpoint is X")  # finite: nothing happens
    guard.watch(torch.tensor(1.0))
    guard.watch(torch.tensor(float("nan")))
    guard.watch(torch.tensor(3.0))  # a later finite value does not hide the NaN
    with pytest.raises(Diverged, match=r"dqn diverged: a NaN/Inf loss or gradient in update 8 \(step 200\); "
                                       r"training stopped, the last good checkpoint is X"):
        guard.check("dqn", 8, 200, "the last good checkpoint is X")
    guard.check("dqn", 9, 300, "-")  # the flag was consumed by the failed check
    guard.watch(torch.tensor(float("inf")))
    with pytest.raises(Diverged):
        guard.check("ppo", 1, 1, "-")


def test_gradient_step_reports_a_nan_gradient_to_the_guard():
    net = nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    guard = DivergenceGuard()
    loss = net(torch.tensor([[float("nan"), 1.0]])).sum()
    gradient_step(opt, loss, 1.0, guard)
    with pytest.raises(Diverged):
        guard.check("a2c", 1, 8, "-")


def test_the_guard_sees_a_nan_gradient_with_clipping_off():
    """sqrt(|w|) at w = 0: the loss is 0.0, finite, but its gradient is not."""
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    guard = DivergenceGuard()
    gradient_step(opt, w.abs().sqrt().sum(), None, guard)
    with pytest.raises(Diverged, match="update 3"):
        guard.check("dqn", 3, 30, "-")
