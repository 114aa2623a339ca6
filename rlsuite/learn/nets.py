"""Shared networks: trunks (MLP, CNN) that expose `out_dim`, and heads that sit on top.

These classes are the contract between the agents and the supervised module: DQN, the policy-
gradient agents, SAC/TD3 and the MNIST classifier all build their models from them. Orthogonal
initialisation with a gain per role (sqrt(2) for ReLU/tanh hidden layers, 0.01 for policy
outputs so the initial policy is near uniform, 1 for values, Q-values and class logits). The
exceptions keep nn.Linear's default, as SB3 does: SAC/TD3's heads and twin critics, and an MLP
built with init="torch" (SAC/TD3's actor_init).
"""

from __future__ import annotations

import contextlib
import copy
import math
import platform
from typing import Callable, Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Normal

HIDDEN_GAIN = math.sqrt(2)
POLICY_GAIN = 0.01
VALUE_GAIN = 1.0

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def init_layer(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


# ---------------------------------------------------------------------------------------------
# Precision of the matrix multiplies
PRECISIONS = ("fp32", "bf16")


def matmul_precision(precision: str, device: torch.device | str):
    """The context an update's forward passes run in. bf16: torch's autocast, so hidden-layer matrix
    multiplies run in bfloat16 (native on CPUs with AVX512-BF16 or AMX: about 4x the fp32 GEMM rate on this
    project's CPU) while weights, gradients and the optimiser stay float32. Output layers opt out (`fp32`);
    backward passes run outside autocast (optim.gradient_step)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    # No cast cache: an update steps weights in place and could read them again in the same context, where a
    # cached bf16 copy would be the pre-step weights. The casts are cheap beside the matmuls.
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


def bf16_is_native(device: torch.device | str) -> bool:
    """False where bf16 matmuls would be emulated, slower than fp32: an x86 CPU without AVX512-BF16 or AMX
    (oneDNN emulates bf16 on plain AVX-512), a GPU older than Ampere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # ARM: oneDNN knows whether it has bf16 kernels


def fp32(x: torch.Tensor):
    """Output layers run in float32 even inside a bf16 autocast: their results feed the losses, targets,
    log-probabilities and tanh, which would otherwise be rounded to bf16's 8 significant bits (a Q near 300 to
    a multiple of 2). The hidden layers' rounding remains, by design of precision=bf16. Heads are tiny, so
    this costs nothing; outside an autocast it is not even entered."""
    if not torch.is_autocast_enabled(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)


# ---------------------------------------------------------------------------------------------
# Trunks
INITS = ("orthogonal", "torch")


class MLP(nn.Module):
    """Fully connected trunk; flattens everything after the batch dimension first.

    init: "orthogonal" (gain sqrt(2), zero biases), or "torch": nn.Linear's own initialisation, kept as it
    draws it, so that under one torch seed the trunk equals a plain nn.Linear stack (SB3's SAC/TD3 actors)."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "relu",
                 init: str = "orthogonal"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layer = nn.Linear(width, h)
            layers += [init_layer(layer, HIDDEN_GAIN) if init == "orthogonal" else layer, ACTIVATIONS[activation]()]
            width = h
        self.body = nn.Sequential(*layers)
        self.out_dim = width
        self.batch_dims = 1  # 2 in a population: (M, B, *obs_shape), see stack_members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(self.batch_dims).float())  # (B, *obs) -> (B, out_dim); bool/uint8 become float


# Conv specs: (channels, kernel, stride, padding) or "pool" for a 2x2 max-pool.
CNN_PRESETS = {
    # Mnih et al. 2015, for 84x84 Atari stacks.
    "nature": [(32, 8, 4, 0), (64, 4, 2, 0), (64, 3, 1, 0)],
    # Young & Tian 2019 (MinAtar): one 3x3 conv on the 10x10 grid.
    "minatar": [(16, 3, 1, 0)],
    # Small images such as 28x28 digits: two conv pairs, each followed by a pool.
    "small": [(32, 3, 1, 1), (32, 3, 1, 1), "pool", (64, 3, 1, 1), (64, 3, 1, 1), "pool"],
}


def default_preset(spatial: int) -> str:
    if spatial >= 64:
        return "nature"
    if spatial <= 12:
        return "minatar"
    return "small"


class CNN(nn.Module):
    """Convolutional trunk for image observations of any size.

    `obs_shape` is (C, H, W) or (H, W, C); `channels_last=None` guesses the layout (the last axis
    is channels when it is not larger than the first: (84, 84, 4) and (10, 10, 7) are channels-last,
    (4, 84, 84) and (1, 28, 28) are channels-first). The flatten size is measured with a dummy
    forward pass, so the same class serves Atari, MinAtar and MNIST. `scale` multiplies the input
    (1/255 for uint8 frames).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        convs: str | Sequence = "auto",
        hidden: int | None = 512,
        channels_last: bool | None = None,
        batch_norm: bool = False,
        scale: float = 1.0,
        width: int | None = None,
    ):
        super().__init__()
        if len(obs_shape) == 2:  # a single-channel image without a channel axis
            obs_shape = (1, *obs_shape)
            channels_last = False
        if len(obs_shape) != 3:
            raise ValueError(f"CNN needs a 3-D observation (C,H,W) or (H,W,C), got shape {tuple(obs_shape)}")
        if channels_last is None:
            channels_last = obs_shape[-1] <= obs_shape[0]
        self.channels_last = channels_last
        self.obs_shape = tuple(obs_shape)
        chw = (obs_shape[2], obs_shape[0], obs_shape[1]) if channels_last else tuple(obs_shape)
        self.scale = scale
        if isinstance(convs, str):
            convs = CNN_PRESETS[default_preset(min(chw[1:])) if convs == "auto" else convs]
        layers: list[nn.Module] = []
        channels = chw[0]
        for spec in convs:
            if spec == "pool":
                layers.append(nn.MaxPool2d(2))
                continue
            out, kernel, stride, padding = (list(spec) + [0])[:4]
            if width is not None:  # scale every layer's channels so that the first has `width`
                out = int(out * width / convs[0][0])
            layers.append(init_layer(nn.Conv2d(channels, out, kernel, stride, padding, bias=not batch_norm), HIDDEN_GAIN))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            channels = out
        layers.append(nn.Flatten())
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *chw)).shape[1]
        if flat == 0:
            raise ValueError(f"the conv stack reduces a {chw} observation to nothing; use smaller kernels")
        self.fc = nn.Sequential(init_layer(nn.Linear(flat, hidden), HIDDEN_GAIN), nn.ReLU()) if hidden else nn.Identity()
        self.out_dim = hidden or flat
        self.members: int | None = None  # M in a population (see stack_members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.members is not None:  # (M, B, ...) -> (B, M*C, H, W): the members' channels side by side,
            return self._forward_members(x)  # each group convolved by its own member's filters
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        elif self.channels_last:
            x = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), already NHWC in memory
        # NHWC in memory (the shape stays NCHW): the CPU's oneDNN convolutions run faster on it
        # (results/pixels/, speed). The copy is made while the frames are still uint8, the cheapest point;
        # the flatten below gives the usual order.
        x = x.contiguous(memory_format=torch.channels_last).float()
        if self.scale != 1.0:
            x = x * self.scale
        return self.fc(self.convs(x))

    def _forward_members(self, x: torch.Tensor) -> torch.Tensor:
        m, b = x.shape[:2]
        if x.dim() == 4:
            x = x.unsqueeze(2)  # (M, B, H, W) -> (M, B, 1, H, W)
        elif self.channels_last:
            x = x.permute(0, 1, 4, 2, 3)
        x = x.transpose(0, 1).reshape(b, -1, *x.shape[-2:]).float()  # (B, M*C, H, W)
        if self.scale != 1.0:
            x = x * self.scale
        h = self.convs[:-1](x)  # grouped convolutions, ReLU and pools act per channel: per member
        return self.fc(h.reshape(b, m, -1).transpose(0, 1))  # (M, B, C'*H'*W') in each member's flatten order


# ---------------------------------------------------------------------------------------------
# Heads
class QHead(nn.Module):
    """Q(s, ·): one output per action."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.out = init_layer(nn.Linear(in_dim, n_actions), VALUE_GAIN)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features)


class DuelingQHead(nn.Module):
    """Wang et al. 2016: Q = V + A - mean(A), which keeps V and A identifiable."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.value = init_layer(nn.Linear(in_dim, 1), VALUE_GAIN)
        self.advantage = init_layer(nn.Linear(in_dim, n_actions), VALUE_GAIN)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        a = self.advantage(features)
        return self.value(features) + a - a.mean(dim=-1, keepdim=True)


class CategoricalHead(nn.Module):
    """Logits of a categorical policy; small init so the first policy is near uniform."""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.logits = init_layer(nn.Linear(in_dim, n_actions), POLICY_GAIN)

    def forward(self, features: torch.Tensor) -> Categorical:
        return Categorical(logits=self.logits(features), validate_args=False)  # argument checks are a large share of a small PPO step

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features).argmax(dim=-1)


class GaussianHead(nn.Module):
    """Diagonal Gaussian policy with a state-independent, learned log standard deviation."""

    def __init__(self, in_dim: int, action_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.mean = init_layer(nn.Linear(in_dim, action_dim), POLICY_GAIN)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, features: torch.Tensor) -> Normal:
        mean = self.mean(features)
        log_std = self.log_std if self.log_std.dim() == 1 else self.log_std[:, None]  # a population's is (M, A)
        return Normal(mean, log_std.exp().expand_as(mean), validate_args=False)

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        return self.mean(features)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC's clamp (Haarnoja et al.'s code, SB3): keeps exp() finite


def squashed_log_prob(normal: Normal, u: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """log π(tanh(u)) for u ~ normal, summed over action dimensions: the Gaussian's log-density minus the
    log-Jacobian of tanh, log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) (a form exact for large |u|,
    where 1 - tanh(u)^2 rounds to 0). With eps > 0 the Jacobian term is log(1 - tanh(u)^2 + eps) instead, the
    form of the SAC authors' code, SB3 and CleanRL (eps 1e-6): once an action saturates (|u| beyond about 7.6) it
    stops at log eps per dimension, so the entropy term stops pulling u back, where the exact one keeps
    growing by 2 per unit of |u|."""
    if eps > 0:
        correction = torch.log(1.0 - torch.tanh(u).pow(2) + eps)
    else:
        correction = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
    return (normal.log_prob(u) - correction).sum(-1)


class TanhGaussianHead(nn.Module):
    """SAC's policy: a state-dependent diagonal Gaussian squashed by tanh into [-1, 1] (Haarnoja et al.
    2018, appendix C). `forward` samples with the reparameterisation trick and returns (action, log-prob)."""

    def __init__(self, in_dim: int, action_dim: int, eps: float = 0.0):
        super().__init__()
        self.mean = nn.Linear(in_dim, action_dim)
        self.log_std = nn.Linear(in_dim, action_dim)
        self.eps = eps  # squashed_log_prob's: 0 exact, 1e-6 SB3's

    def distribution(self, features: torch.Tensor) -> Normal:
        with fp32(features):
            features = features.float()
            log_std = self.log_std(features).clamp(LOG_STD_MIN, LOG_STD_MAX)
            return Normal(self.mean(features), log_std.exp(), validate_args=False)

    def forward(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """noise: standard normals to sample with (a population draws each member's from its own generator);
        None: torch's global generator."""
        normal = self.distribution(features)  # float32: the sampling and log-prob below stay float32
        u = normal.rsample() if noise is None else normal.loc + normal.scale * noise
        return torch.tanh(u), squashed_log_prob(normal, u, self.eps)

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        with fp32(features):
            return torch.tanh(self.mean(features.float()))


class DeterministicTanhHead(nn.Module):
    """TD3's (and DDPG's) policy: a = tanh(W h + b) in [-1, 1]."""

    def __init__(self, in_dim: int, action_dim: int):
        super().__init__()
        self.out = nn.Linear(in_dim, action_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with fp32(features):
            return torch.tanh(self.out(features.float()))

    mode = forward


class EnsembleMLP(nn.Module):
    """K independent MLPs (same sizes) evaluated as one batched matmul per layer: (B, in) -> (K, B, out).

    Twin critics are the use: one `baddbmm` for both instead of two Linear calls per layer halves the
    dispatches that bound a small network's speed on a CPU. Each member is initialised as nn.Linear is
    (uniform ±1/sqrt(fan_in)), and member k equals an nn.Linear stack holding weight[k].T and bias[k]."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, members: int = 2, activation: str = "relu"):
        super().__init__()
        sizes = [in_dim, *hidden, out_dim]
        self.members = members
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes, sizes[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, b).uniform_(-bound, bound)))
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, detach_weights: bool = False, first: int | None = None) -> torch.Tensor:
        """detach_weights: gradients flow to x only (an actor's loss through its critics skips their weight
        gradients, which the critics' own update would discard anyway). first=k: members 0..k-1 only (TD3's
        actor reads Q_1 alone; computing Q_2 too would be arithmetic thrown away).

        In a population (stack_members: weights (P, K, a, b)) x is (P, B, in) and the result (P, K, B, out):
        the P×K networks run as one batched matmul per layer."""
        population = self.weights[0].dim() == 4
        k = self.members if first is None else first
        if population:
            p = x.shape[0]
            h = x.float().unsqueeze(1).expand(p, k, *x.shape[1:]).reshape(p * k, *x.shape[1:])
        else:
            h = x.float().expand(k, *x.shape) if x.dim() == 2 else x.float()
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if first is not None:
                w, b = w[..., :first, :, :], b[..., :first, :, :]
            if detach_weights:
                w, b = w.detach(), b.detach()
            if population:
                w, b = w.flatten(0, 1), b.flatten(0, 1)
            if i < last:
                h = self.act(torch.baddbmm(b, h, w))  # (K, B, a) @ (K, a, b) + (K, 1, b)
            else:
                with fp32(h):  # the outputs (Q-values) in float32 under a bf16 autocast too
                    h = torch.baddbmm(b, h.float(), w)
        return h.view(p, k, *h.shape[1:]) if population else h


class ValueHead(nn.Module):
    """V(s) as a (B,) tensor."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out = init_layer(nn.Linear(in_dim, 1), VALUE_GAIN)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features).squeeze(-1)  # (B, 1) -> (B,)


class ClassifierHead(nn.Module):
    """Class logits, with optional dropout on the features."""

    def __init__(self, in_dim: int, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out = init_layer(nn.Linear(in_dim, n_classes), VALUE_GAIN)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(features))


# ---------------------------------------------------------------------------------------------
# Populations: M networks of one architecture as one network whose every weight has a leading member axis.
class MemberLinear(nn.Module):
    """M nn.Linear layers of one size as one batched matmul, (M, B, in) -> (M, B, out). weight (M, out, in)
    and bias (M, out): member m's slices are exactly an nn.Linear's weight and bias."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class MemberConv2d(nn.Module):
    """M nn.Conv2d layers of one size as one grouped convolution over (B, M*C, H, W). weight (M, out, in, k, k)
    and bias (M, out), member m's slices an nn.Conv2d's."""

    def __init__(self, layers: Sequence[nn.Conv2d]):
        super().__init__()
        first = layers[0]
        self.stride, self.padding, self.members = first.stride, first.padding, len(layers)
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight.flatten(0, 1), self.bias.flatten(), self.stride, self.padding,
                                    groups=self.members)


def stack_members(nets: Sequence[nn.Module]) -> nn.Module:
    """One network for a population: nets[m] (same architecture, each initialised from its member's seed)
    become member m of a network that maps (M, B, ...) inputs to (M, B, ...) outputs. Its state_dict has the
    single network's keys, each tensor with a leading member axis: member_state_dict(net, m) is net m's."""
    stacked = copy.deepcopy(nets[0])
    for name, module in list(stacked.named_modules()):
        copies = [net.get_submodule(name) for net in nets]
        parent_name, _, attr = name.rpartition(".")
        parent = stacked.get_submodule(parent_name) if name else None
        if isinstance(module, nn.Linear):
            setattr(parent, attr, MemberLinear(copies))
        elif isinstance(module, nn.Conv2d):
            setattr(parent, attr, MemberConv2d(copies))
        elif isinstance(module, (nn.BatchNorm2d, nn.Dropout)):
            raise ValueError(f"{type(module).__name__} has no population form (its statistics would mix members)")
        elif isinstance(module, MLP):
            module.batch_dims = 2
        elif isinstance(module, CNN):
            module.members = len(nets)
        for pname, param in list(module.named_parameters(recurse=False)):  # a head's own parameter (log-std)
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                module._parameters[pname] = nn.Parameter(torch.stack([c._parameters[pname].detach() for c in copies]))
    return stacked


def member_state_dict(stacked: nn.Module, member: int) -> dict:
    """Member `member`'s weights under the single network's keys: they load into a network built alone."""
    return {k: v[member].clone() for k, v in stacked.state_dict().items()}


@torch.no_grad()
def load_member_state(stacked: nn.Module, member: int, state: dict) -> None:
    """Put a single network's state_dict into member `member` of a stacked network."""
    own = stacked.state_dict()
    if set(own) != set(state):
        raise KeyError(f"the state has keys {sorted(set(state) ^ set(own))[:3]} the network does not (or lacks them)")
    for key, value in state.items():
        own[key][member].copy_(value)


def seeded(seed: int, build: Callable, *args) -> nn.Module:
    """A member's network, initialised from its own seed (as a single run with that seed initialises it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args)


class Member:
    """Member m of a stacked network seen as a single network, for code that loads weights into one."""

    def __init__(self, stacked: nn.Module, member: int):
        self.stacked, self.member = stacked, member

    def load_state_dict(self, state: dict) -> None:
        load_member_state(self.stacked, self.member, state)


# ---------------------------------------------------------------------------------------------
def make_trunk(obs_shape: Sequence[int], net: str, hidden: Sequence[int], activation: str = "relu",
               uint8: bool = False) -> nn.Module:
    """The trunk an agent config asks for: 'mlp' (hidden sizes), 'cnn' (preset by image size), or 'auto':
    the CNN for image observations (3-D: (C,H,W) or (H,W,C)), the MLP otherwise."""
    if net == "auto":
        net = "cnn" if len(obs_shape) == 3 else "mlp"
    if net == "mlp":
        return MLP(int(math.prod(obs_shape)), hidden, activation)
    if net == "cnn":
        return CNN(obs_shape, hidden=hidden[-1] if hidden else 512, scale=1 / 255 if uint8 else 1.0)
    raise ValueError(f"unknown net {net!r}")
