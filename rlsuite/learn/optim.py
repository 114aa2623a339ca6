"""What every agent's update shares: the optimiser, a gradient step with clipping, target-network
updates, and the divergence guard that stops a run whose loss or gradients stop being numbers."""

from __future__ import annotations

import torch
from torch import nn

from rlsuite.core.errors import UserError
from rlsuite.learn.nets import fp32


def make_adam(params, lr: float, eps: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has one (one kernel for every parameter: fewer small ops)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class Diverged(UserError):
    """Training produced NaN/Inf: the run stops, is marked failed, and keeps its last good checkpoint. `step`: where."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


class DivergenceGuard:
    """Collects whether every loss and gradient norm of an update phase was finite, as a tensor, so that
    a GPU is not synchronised after each gradient step; `check` reads it once per phase."""

    def __init__(self):
        self._finite: torch.Tensor | None = None

    def watch(self, *values: torch.Tensor) -> None:
        for v in values:
            ok = torch.isfinite(v.detach()).all()
            self._finite = ok if self._finite is None else self._finite & ok

    def check(self, what: str, update: int, step: int, last_good: str) -> None:
        """Raise Diverged naming the update and the last good checkpoint if anything watched was NaN/Inf."""
        finite, self._finite = self._finite, None
        if finite is not None and not bool(finite):
            raise Diverged(step=step, message=f"{what} diverged: a NaN/Inf loss or gradient in update {update:,} (step {step:,}); "
                           f"training stopped, {last_good}; lower lr, or enable gradient clipping / normalisation")


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float | None,
                  guard: DivergenceGuard | None = None) -> None:
    """zero_grad -> backward -> clip the global gradient norm (torch's clip_grad_norm_) -> step. The backward
    pass runs outside any autocast (PyTorch's advice for mixed precision): layers that ran in float32 forward
    get float32 gradients, those that ran in bf16 keep their bf16 backward."""
    optimizer.zero_grad(set_to_none=True)
    with fp32(loss):
        loss.backward()
    watched = [loss]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm is not None:
        watched.append(torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True))
    elif guard is not None:  # no clipping, but a NaN gradient under a finite loss must still be seen
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            watched.append(torch.nn.utils.get_total_norm(grads, foreach=True))
    if guard is not None:
        guard.watch(*watched)
    optimizer.step()


@torch.no_grad()
def update_target(net: nn.Module, target: nn.Module, tau: float) -> None:
    """tau = 1: hard copy (DQN's periodic sync); tau < 1: Polyak averaging target <- (1-tau) target + tau net."""
    if tau == 1.0:
        target.load_state_dict(net.state_dict())
    else:
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)


# ---------------------------------------------------------------------------------------------
# Populations: M members whose parameters are stacked on a leading axis (nets.stack_members). Adam and
# RMSprop are elementwise, so one optimiser over the stacked tensors steps each member as its own would;
# what is not elementwise (the gradient norm, the divergence check) is computed per member here.
def member_grad_norms(params) -> torch.Tensor:
    """(M,) the L2 norm of each member's own gradient over all parameters."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads[0].shape[0] == 1:  # a population of one: torch's fused norm over the whole gradient
        return torch.nn.utils.get_total_norm(grads, foreach=True).reshape(1)
    # torch's way (each tensor's norm, then the norm of those), per member: one pass over each gradient
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], 1), dim=1)


def clip_member_grad_norms_(params, max_norm: float) -> torch.Tensor:
    """clip_grad_norm_ for each member on its own: its gradient scaled by min(1, max_norm / (norm + 1e-6))."""
    norms = member_grad_norms(params)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    grads = [p.grad for p in params if p.grad is not None]
    if grads[0].shape[0] == 1:
        torch._foreach_mul_(grads, scale.reshape(()))  # one kernel for every gradient (clip_grads_with_norm_'s way)
        return norms
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


class MemberDivergenceGuard:
    """DivergenceGuard per member: which members had a NaN/Inf loss or gradient norm in an update phase."""

    def __init__(self, members: int):
        self.members = members
        self._finite: torch.Tensor | None = None

    def watch(self, *values: torch.Tensor) -> None:
        for v in values:
            ok = torch.isfinite(v.detach().reshape(self.members, -1)).all(1)
            self._finite = ok if self._finite is None else self._finite & ok

    def diverged(self) -> list[int]:
        finite, self._finite = self._finite, None
        return [] if finite is None else torch.nonzero(~finite).flatten().tolist()


def member_gradient_step(optimizer: torch.optim.Optimizer, losses: torch.Tensor, alive: torch.Tensor,
                         max_grad_norm: float | None, guard: MemberDivergenceGuard) -> None:
    """gradient_step for a population: `losses` (M,) are the members' own losses. Their sum has, for each
    member's slice of the weights, exactly that member's gradient; retired members (alive False) add none."""
    optimizer.zero_grad(set_to_none=True)
    with fp32(losses):
        (losses * alive).sum().backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norms = clip_member_grad_norms_(params, max_grad_norm) if max_grad_norm is not None else member_grad_norms(params)
    guard.watch(losses, norms)
    optimizer.step()


def member_optimizer_state(optimizer: torch.optim.Optimizer, member: int) -> dict:
    """Member `member`'s slice of the optimiser state, in the form a single network's optimiser saves."""
    state = optimizer.state_dict()
    return {"state": {k: {name: (v[member].clone() if torch.is_tensor(v) and v.dim() > 0 else v)
                          for name, v in s.items()} for k, s in state["state"].items()},
            "param_groups": state["param_groups"]}


def load_member_optimizer_states(optimizer: torch.optim.Optimizer, states: list[dict]) -> None:
    """The members' saved optimiser states, stacked back into one (steps counted together, so equal)."""
    first = states[0]
    stacked = {k: {name: (torch.stack([s["state"][k][name] for s in states]) if torch.is_tensor(v) and v.dim() > 0
                          else v) for name, v in first["state"][k].items()} for k in first["state"]}
    optimizer.load_state_dict({"state": stacked, "param_groups": first["param_groups"]})


@torch.no_grad()
def retire_member(optimizer: torch.optim.Optimizer, member: int) -> None:
    """A diverged member's weights and moments set to zero: finite, so it cannot poison the batched passes,
    while the others train on. Its loss is masked out from then on."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p[member] = 0.0
            for v in optimizer.state.get(p, {}).values():
                if torch.is_tensor(v) and v.dim() > 0:
                    v[member] = 0.0
