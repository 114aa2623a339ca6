"""Off-policy actor-critic for continuous actions: SAC and TD3.

  SAC  (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications": automatic entropy tuning)
       a stochastic policy, a tanh-squashed Gaussian; soft targets
           y = r + γ d (min_k Q'_k(s', a') - α log π(a'|s')),   a' ~ π(.|s')
       the policy maximises E[min_k Q_k(s, ã) - α log π(ã|s)], ã ~ π(.|s) (reparameterised), and α is
       tuned so that the policy's entropy stays near the target -dim(A).
  TD3  (Fujimoto et al. 2018) a deterministic tanh policy μ, explored with Gaussian noise; targets with
       policy smoothing
           a' = clip(μ'(s') + clip(N(0, σ'), -c, c), -1, 1),   y = r + γ d min_k Q'_k(s', a')
       the actor (maximising Q_1(s, μ(s))) and every target net move once per `policy_delay` critic updates.

Both learn twin critics Q_1, Q_2 (one batched ensemble, nets.EnsembleMLP) from a replay buffer, keep
Polyak-averaged target copies, and act uniformly at random for the first `learning_starts` steps (as
SB3). d = 0 after a termination and γ after a time limit (bootstrapped from the true final observation).
Actions live in [-1, 1] in the networks and the buffer; the env gets them rescaled to its bounds.

Loop (one iteration = one step of every env in the vector env):
  act -> step the envs -> store -> every `train_freq` env steps do `gradient_steps` updates
  (critic; SAC: α and actor; TD3: actor and targets every `policy_delay`) -> log, evaluate, checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlsuite.config.schema import CommonConfig, Schedule, param, positive, require, require_hidden
from rlsuite.config.zoo import (
    SB3,
    action_noise_from_zoo,
    action_noise_to_sb3,
    activation_to_sb3,
    ent_coef_from_zoo,
    ent_coef_init_from_zoo,
    gradient_steps_from_zoo,
    hidden_from_zoo,
    hidden_to_sb3,
    only_if,
    sac_ent_coef_to_sb3,
    target_entropy_from_zoo,
    target_entropy_to_sb3,
    train_freq_from_zoo,
    train_freq_to_sb3,
)
from rlsuite.core.errors import UserError
from rlsuite.core.seeding import AGENT, WEIGHTS, eval_sample_seed
from rlsuite.envs.make import check_memory, episode_stats, make_vector_env, net_bytes, require_box_obs, true_next_obs
from rlsuite.learn.nets import (
    INITS,
    MLP,
    PRECISIONS,
    DeterministicTanhHead,
    EnsembleMLP,
    Member,
    TanhGaussianHead,
    load_member_state,
    matmul_precision,
    member_state_dict,
    seeded,
    stack_members,
)
from rlsuite.learn.optim import (Diverged, MemberDivergenceGuard, load_member_optimizer_states, make_adam,
                                 member_gradient_step, member_optimizer_state, retire_member, set_lr, update_target)
from rlsuite.learn.replay import NStepAccumulator, ReplayBuffer, naive_replay_bytes
from rlsuite.run.checkpoint import restore_weights
from rlsuite.run.engine import Run
from rlsuite.run.population import Population


@dataclass
class OffPolicyConfig(CommonConfig):
    """What SAC and TD3 share (SB3's defaults)."""

    lr: Schedule = param(Schedule(3e-4), "Adam learning rate of the actor and critics (in SAC, of its entropy "
                         "coefficient α too); number or schedule", sb3="learning_rate")
    buffer_size: int = param(1_000_000, "replay capacity in transitions", sb3="buffer_size")
    learning_starts: int = param(100, "env steps of uniformly random actions (as SB3) before the first update",
                                 sb3="learning_starts")
    batch_size: int = param(256, "transitions per gradient step", sb3="batch_size")
    tau: float = param(0.005, "Polyak rate of the target networks", sb3="tau")
    gamma: float = param(0.99, "discount factor", sb3="gamma")
    train_freq: int = param(1, "env steps between update phases",
                             sb3=SB3("train_freq", from_zoo=train_freq_from_zoo, to_sb3=train_freq_to_sb3))
    gradient_steps: int = param(1, "gradient steps per update phase",
                                 sb3=SB3("gradient_steps", from_zoo=gradient_steps_from_zoo))
    hidden: tuple[int, ...] = param((256, 256), "hidden sizes of the actor and of each critic",
                                     sb3=SB3("net_arch", from_zoo=hidden_from_zoo, to_sb3=hidden_to_sb3))
    activation: str = param("relu", "activation", choices=("relu", "tanh", "elu", "gelu"),
                            sb3=SB3("activation_fn", to_sb3=activation_to_sb3))
    max_grad_norm: float | None = param(None, "gradient-norm clip (none: off, as SB3)", sb3=SB3(to_sb3=only_if(None)))
    actor_init: str = param("orthogonal", "the actor trunk's initialisation: orthogonal (gain sqrt 2, zero biases, as "
                            "rlsuite's other agents) or torch (nn.Linear's default, as SB3's SAC/TD3 actors); the "
                            "critics and the actor's head always use nn.Linear's default, as SB3", choices=INITS,
                            sb3=SB3(to_sb3=only_if("torch")))
    precision: str = param("fp32", "matrix multiplies of the updates: fp32, or bf16 (autocast: hidden layers in "
                           "bfloat16; weights, optimiser and outputs in float32). bf16 is faster where the hardware "
                           "has native bfloat16 matrix multiplies (AVX512-BF16 or AMX CPUs, Ampere+ GPUs) and slower "
                           "where it is emulated; it changes the arithmetic, so its learning is measured on its own "
                           "(results/continuous/)", choices=PRECISIONS)
    log_every: int = param(1_000, "env steps between loss logs")

    def gradient_steps_per_env_step(self) -> float:
        """Critic gradient steps per env step (gradient_steps each time the env-step count crosses a multiple of
        train_freq): tuning's cost term."""
        return self.gradient_steps / self.train_freq

    def validate(self):
        super().validate()
        require(self, ("buffer_size", "batch_size", "train_freq", "gradient_steps", "log_every"), positive, "positive")
        require(self, ("buffer_size",), lambda v: v <= 10**9, "at most 1e9 transitions")
        require(self, ("learning_starts",), lambda v: v >= 0, ">= 0")
        require(self, ("lr",), lambda v: 0 <= v <= 10, "a learning rate in [0, 10] (a positive start)")
        require(self, ("tau",), lambda v: 0 < v <= 1, "in (0, 1]")
        require(self, ("gamma",), lambda v: 0 <= v <= 1, "in [0, 1]")
        require(self, ("max_grad_norm",), lambda v: v is None or v > 0, "positive (or none)")
        require_hidden(self)
        if self.batch_size > self.buffer_size:
            raise UserError(f"batch_size {self.batch_size} is larger than buffer_size {self.buffer_size}")
        if self.lr.start <= 0:
            raise UserError(f"lr must start above 0, got {self.lr.to_data()}")


@dataclass
class SACConfig(OffPolicyConfig):
    agent_name = "sac"
    ent_coef: float | None = param(None, "entropy coefficient α (none: tuned automatically towards target_entropy)",
                                   sb3=SB3("ent_coef", from_zoo=ent_coef_from_zoo, to_sb3=sac_ent_coef_to_sb3))
    ent_coef_init: float = param(1.0, "α at the start when it is tuned",
                                sb3=SB3(from_zoo=ent_coef_init_from_zoo, to_sb3=sac_ent_coef_to_sb3))
    target_entropy: float | None = param(None, "entropy α aims for (none: -dim(A), the paper's heuristic)",
                                         sb3=SB3("target_entropy", from_zoo=target_entropy_from_zoo,
                                                 to_sb3=target_entropy_to_sb3))
    target_update_interval: int = param(1, "gradient steps between Polyak updates of the target critics",
                                        sb3="target_update_interval")
    tanh_eps: float = param(0.0, "ε in the log-prob's squashing term log(1 - tanh(u)² + ε): 0 is exact; 1e-6 is SB3's "
                            "(and CleanRL's and the SAC authors' code), whose term stops at log ε per dimension once "
                            "an action saturates, so the entropy bonus no longer pulls saturated actions back",
                            sb3=SB3(to_sb3=only_if(1e-6)))

    def validate(self):
        super().validate()
        require(self, ("ent_coef",), lambda v: v is None or v >= 0, ">= 0 (or none: tuned)")
        require(self, ("tanh_eps",), lambda v: 0 <= v < 1, "in [0, 1) (0: exact; SB3 uses 1e-6)")
        require(self, ("ent_coef_init", "target_update_interval"), positive, "positive")


@dataclass
class TD3Config(OffPolicyConfig):
    agent_name = "td3"
    policy_delay: int = param(2, "critic updates per actor and target update", sb3="policy_delay")
    action_noise: float = param(0.1, "std of the Gaussian exploration noise (actions in [-1, 1])",
                                sb3=SB3("noise_std", from_zoo=action_noise_from_zoo, to_sb3=action_noise_to_sb3))
    target_policy_noise: float = param(0.2, "std of the target policy smoothing noise", sb3="target_policy_noise")
    target_noise_clip: float = param(0.5, "the smoothing noise is clipped to ± this", sb3="target_noise_clip")

    def validate(self):
        super().validate()
        require(self, ("policy_delay",), positive, "positive")
        require(self, ("action_noise", "target_policy_noise", "target_noise_clip"), lambda v: v >= 0, ">= 0")


# ---------------------------------------------------------------------------------------------
def check_spaces(obs_space, action_space, cfg: OffPolicyConfig | None = None, env_card=None, *,
                 agent: str | None = None) -> None:
    name = (cfg.agent_name if cfg is not None else agent or "sac/td3").upper()
    if not isinstance(action_space, gym.spaces.Box):
        raise UserError(f"{name} needs continuous (Box) actions, but this env has {action_space}; use DQN or PPO "
                        "for discrete actions")
    if len(action_space.shape) != 1:
        raise UserError(f"{name} needs a flat Box action vector, got shape {action_space.shape}; reshape the actions "
                        "with an ActionWrapper of your own, referenced in the env card as package.module:Class")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise UserError(f"{name} squashes actions into the env's bounds, but they are infinite ({action_space}); "
                        "declare finite bounds with an ActionWrapper of your own (package.module:Class in the env card)")
    require_box_obs(obs_space, name)
    if cfg is not None:
        act_dim = int(action_space.shape[0])
        check_memory(naive_replay_bytes(cfg.buffer_size, obs_space.shape, np.float32) + cfg.buffer_size * 4 * act_dim,
                     f"a replay buffer of {cfg.buffer_size:,} transitions", "lower buffer_size")
        check_memory(net_bytes(obs_space.shape, cfg.hidden, act_dim, copies=12),
                     f"a {list(cfg.hidden)} actor and twin critics", "use smaller hidden sizes")


def build_actor(cfg: OffPolicyConfig, obs_dim: int, act_dim: int) -> nn.Module:
    trunk = MLP(obs_dim, cfg.hidden, cfg.activation, init=cfg.actor_init)
    if isinstance(cfg, SACConfig):
        return nn.Sequential(trunk, TanhGaussianHead(trunk.out_dim, act_dim, cfg.tanh_eps))
    return nn.Sequential(trunk, DeterministicTanhHead(trunk.out_dim, act_dim))


def build_critics(cfg: OffPolicyConfig, obs_dim: int, act_dim: int) -> EnsembleMLP:
    """Q_1, Q_2 on (s, a): one ensemble, (B, obs+act) -> (2, B, 1)."""
    return EnsembleMLP(obs_dim + act_dim, cfg.hidden, 1, members=2, activation=cfg.activation)


def q_values(critics: EnsembleMLP, obs: torch.Tensor, actions: torch.Tensor, detach_weights: bool = False,
             first: int | None = None) -> torch.Tensor:
    """(M, 2, B): each member's Q_1 and Q_2 on its own (M, B, ...) batch (first=1: Q_1 alone, (M, 1, B))."""
    x = torch.cat([obs.flatten(2).float(), actions], dim=-1)
    return critics(x, detach_weights, first).squeeze(-1)


def rescaler(action_space):
    """[-1, 1] -> the env's bounds."""
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    return lambda a: (low + (np.asarray(a) + 1.0) * 0.5 * (high - low)).astype(action_space.dtype)


def deterministic_policy(actor: nn.Module, action_space, device, cfg: OffPolicyConfig | None = None,
                         sample_seed: int | None = None):
    """Evaluation (docs/protocol.md): SAC's tanh(mean), TD3's μ(s), rescaled to the env's bounds. With a
    sample_seed, the stochastic evaluation (eval_deterministic: false): SAC's tanh-Gaussian sample, TD3's μ(s)
    plus its exploration noise N(0, action_noise²) clipped to [-1, 1], drawn from a generator of that seed."""
    trunk, head = actor[0], actor[1]
    to_env = rescaler(action_space)
    generator = torch.Generator(device=device).manual_seed(sample_seed) if sample_seed is not None else None

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        features = trunk(torch.as_tensor(obs, device=device).flatten(1).float())
        if generator is None:
            return to_env(head.mode(features).cpu().numpy())
        if isinstance(head, TanhGaussianHead):
            noise = torch.randn((features.shape[0], action_space.shape[0]), generator=generator, device=device)
            return to_env(head(features, noise)[0].cpu().numpy())
        mu = head(features)
        noise = torch.randn(mu.shape, generator=generator, device=device) * cfg.action_noise
        return to_env((mu + noise).clamp(-1.0, 1.0).cpu().numpy())

    return act


def load_policy(cfg: OffPolicyConfig, envs_or_spaces, state: dict, device: torch.device, sample_seed: int | None = None):
    obs_space, action_space = envs_or_spaces
    actor = build_actor(cfg, int(np.prod(obs_space.shape)), int(action_space.shape[0])).to(device)
    actor.load_state_dict(state["actor"])
    actor.eval()
    return deterministic_policy(actor, action_space, device, cfg, sample_seed)


# ---------------------------------------------------------------------------------------------
# One gradient step of each algorithm for a population: every tensor has a leading member axis M (1 for a
# single run), each loss is the (M,) vector of the members' own losses, and `noise` draws each member's
# samples from its own generator.
def sac_update(cfg: SACConfig, nets: dict, opts: dict, batch: dict, guard, alive, noise: Callable) -> dict:
    actor, critics, critics_target, log_alpha = nets["actor"], nets["critics"], nets["critics_target"], nets["log_alpha"]
    obs, next_obs = batch["obs"], batch["next_obs"]
    act_dim = batch["actions"].shape[-1]
    # α: from the current policy's log-probabilities on this batch (SB3's order: α, critics, actor)
    actions_pi, logp_pi = policy_sample(actor, obs, noise(act_dim))
    alpha = log_alpha.exp().detach() if cfg.ent_coef is None else torch.full_like(log_alpha, cfg.ent_coef)  # (M, 1)
    stats = {}
    if cfg.ent_coef is None:
        alpha_loss = -(log_alpha * (logp_pi.detach() + nets["target_entropy"])).mean(-1)
        member_gradient_step(opts["alpha"], alpha_loss, alive, None, guard)
        stats["ent_coef_loss"] = alpha_loss.detach()
    # critics: soft Bellman targets from the target critics and a fresh a' ~ π(.|s')
    with torch.no_grad():
        next_actions, next_logp = policy_sample(actor, next_obs, noise(act_dim))
        next_q = q_values(critics_target, next_obs, next_actions).min(dim=-2).values - alpha * next_logp
        y = batch["rewards"] + batch["discounts"] * next_q
    q = q_values(critics, obs, batch["actions"])
    critic_loss = 0.5 * (q - y.unsqueeze(-2)).pow(2).mean(-1).sum(-1)  # Σ_k MSE(Q_k, y), halved as in SB3
    member_gradient_step(opts["critics"], critic_loss, alive, cfg.max_grad_norm, guard)
    # actor: maximise min_k Q_k(s, ã) - α log π(ã|s); the critics' weights are read, not trained, here
    # (detached: the backward pass skips their weight gradients, which SB3 computes and discards)
    q_pi = q_values(critics, obs, actions_pi, detach_weights=True).min(dim=-2).values
    actor_loss = (alpha * logp_pi - q_pi).mean(-1)
    member_gradient_step(opts["actor"], actor_loss, alive, cfg.max_grad_norm, guard)
    # target critics: Polyak averaging every target_update_interval updates (the actor has no target in SAC)
    if nets["updates"] % cfg.target_update_interval == 0:
        update_target(critics, critics_target, cfg.tau)
    return stats | {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(), "ent_coef": alpha[:, 0]}


def policy_sample(actor: nn.Module, obs: torch.Tensor, noise: torch.Tensor):
    """SAC's ã = tanh(μ + σ ε) and log π(ã|s), ε given (each member's own)."""
    return actor[1](actor[0](obs), noise)


def smoothed_target_actions(mu_next: torch.Tensor, cfg: TD3Config, noise: torch.Tensor) -> torch.Tensor:
    """TD3's target policy smoothing: a' = clip(μ'(s') + clip(σ' ε, -c, c), -1, 1), ε standard normal."""
    noise = (noise * cfg.target_policy_noise).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
    return (mu_next + noise).clamp(-1.0, 1.0)


def td3_update(cfg: TD3Config, nets: dict, opts: dict, batch: dict, guard, alive, noise: Callable) -> dict:
    actor, critics = nets["actor"], nets["critics"]
    obs, next_obs = batch["obs"], batch["next_obs"]
    # critics: targets with target policy smoothing (noise on a', clipped, a' kept in bounds)
    with torch.no_grad():
        next_actions = smoothed_target_actions(nets["actor_target"](next_obs), cfg, noise(batch["actions"].shape[-1]))
        next_q = q_values(nets["critics_target"], next_obs, next_actions).min(dim=-2).values
        y = batch["rewards"] + batch["discounts"] * next_q
    q = q_values(critics, obs, batch["actions"])
    critic_loss = (q - y.unsqueeze(-2)).pow(2).mean(-1).sum(-1)  # Σ_k MSE(Q_k, y), as in SB3
    member_gradient_step(opts["critics"], critic_loss, alive, cfg.max_grad_norm, guard)
    stats = {"critic_loss": critic_loss.detach()}
    # delayed: the actor and every target net move once per policy_delay critic updates
    if nets["updates"] % cfg.policy_delay == 0:
        actor_loss = -q_values(critics, obs, actor(obs), detach_weights=True, first=1)[:, 0].mean(-1)  # Q_1 only
        member_gradient_step(opts["actor"], actor_loss, alive, cfg.max_grad_norm, guard)
        update_target(critics, nets["critics_target"], cfg.tau)
        update_target(actor, nets["actor_target"], cfg.tau)
        stats["actor_loss"] = actor_loss.detach()
    return stats


def build_learner(cfg: OffPolicyConfig, obs_dim: int, act_dim: int, device, seeds: list[int]) -> tuple[dict, dict]:
    """The networks of a population, each member's initialised from its seed and stacked (actor, twin critics,
    their targets; SAC's log α, one per member) and their optimisers (SB3's Adam)."""
    def actor_and_critics():  # drawn in this order from the member's seed, as a single run draws them
        return build_actor(cfg, obs_dim, act_dim), build_critics(cfg, obs_dim, act_dim)

    members = [seeded(s, actor_and_critics) for s in seeds]
    actor = stack_members([a for a, _ in members]).to(device)
    critics = stack_members([c for _, c in members]).to(device)
    nets = {"actor": actor, "critics": critics, "critics_target": copy.deepcopy(critics), "updates": 0}
    opts = {"actor": make_adam(actor.parameters(), cfg.lr(0.0), 1e-8),
            "critics": make_adam(critics.parameters(), cfg.lr(0.0), 1e-8)}
    if isinstance(cfg, SACConfig):
        nets["log_alpha"] = torch.full((len(seeds), 1), float(np.log(cfg.ent_coef_init)), device=device, requires_grad=True)
        nets["target_entropy"] = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        opts["alpha"] = make_adam([nets["log_alpha"]], cfg.lr(0.0), 1e-8)
    else:
        nets["actor_target"] = copy.deepcopy(actor)
    for target in ("critics_target", "actor_target"):
        if target in nets:
            nets[target].requires_grad_(False)
    return nets, opts


# ---------------------------------------------------------------------------------------------
def batchable(cfg: OffPolicyConfig) -> bool:
    """Every SAC and TD3 config trains its seeds as one population."""
    return True


def train(cfg: OffPolicyConfig, run: Run) -> dict:
    """One run: a population of one."""
    with Population([run]) as population:
        return train_population(cfg, population)[0]


def train_population(cfg: OffPolicyConfig, population: Population) -> list[dict]:
    sac = isinstance(cfg, SACConfig)
    runs, M, E = population.runs, population.size, cfg.num_envs
    device = population.device
    envs = make_vector_env(runs[0].env_card, M * E)  # member m steps sub-envs m*E .. m*E+E-1
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space, cfg)
    obs_dim, act_dim = int(np.prod(obs_space.shape)), int(action_space.shape[0])
    to_env = rescaler(action_space)
    rows = [slice(m * E, (m + 1) * E) for m in range(M)]

    nets, opts = build_learner(cfg, obs_dim, act_dim, device, [run.seeds.torch_seed(WEIGHTS) for run in runs])
    actor, critics = nets["actor"], nets["critics"]
    # each member its own replay memory, filled from its own envs
    buffers = [ReplayBuffer(cfg.buffer_size, obs_space.shape, np.float32, action_shape=(act_dim,),
                            action_dtype=np.float32, device=device) for _ in runs]
    stores = [NStepAccumulator(E, 1, cfg.gamma) for _ in runs]  # one-step transitions, discount 0 after a termination
    rngs = [run.seeds.numpy(AGENT) for run in runs]  # random actions, exploration noise, replay sampling
    generators = [torch.Generator(device=device).manual_seed(run.seeds.torch_seed(AGENT)) for run in runs]  # policy and target noise
    guard = MemberDivergenceGuard(M)
    alive = torch.ones(M, device=device)
    singles: dict[int, nn.Module] = {}  # member -> its actor alone, for its evaluations

    def noise(*shape) -> torch.Tensor:
        """Standard normals (M, B, *shape), each member's from its own generator."""
        return torch.stack([torch.randn((cfg.batch_size, *shape), generator=g, device=device) for g in generators])

    @torch.no_grad()
    def explore(obs: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1], (M, E, A): SAC samples its policy, TD3 adds Gaussian noise to μ(s)."""
        x = torch.as_tensor(obs.reshape(M, E, -1), device=device).float()
        if sac:
            eps = torch.stack([torch.randn((E, act_dim), generator=g, device=device) for g in generators])
            return policy_sample(actor, x, eps)[0].cpu().numpy()
        mu = actor(x).cpu().numpy()
        noise = np.stack([rng.normal(0.0, cfg.action_noise, (E, act_dim)) for rng in rngs])
        return np.clip(mu + noise, -1.0, 1.0).astype(np.float32)

    step = 0
    if runs[0].restored:
        states = [run.restored["state"] for run in runs]
        for m, s in enumerate(states):
            restore_weights(Member(actor, m), s["actor"], runs[m])
            load_member_state(critics, m, s["critics"])
            load_member_state(nets["critics_target"], m, s["critics_target"])
            if "actor_target" in nets:
                load_member_state(nets["actor_target"], m, s["actor_target"])
            if sac:
                with torch.no_grad():
                    nets["log_alpha"][m] = s["log_alpha"].reshape(1)
            if "buffer" in s:
                buffers[m].load_state_dict(s["buffer"])
            rngs[m].bit_generator.state = s["rng"]
            if "noise_rng" in s:
                generators[m].set_state(s["noise_rng"])
        for name, opt in opts.items():
            load_member_optimizer_states(opt, [s["optimizers"][name] for s in states])
        step, nets["updates"] = runs[0].restored["step"], states[0]["updates"]
    obs = population.reset_envs(envs, E)
    learn_after = cfg.learning_starts if not runs[0].restored or "buffer" in runs[0].restored["state"] else \
        runs[0].restored["step"] + max(cfg.learning_starts, cfg.batch_size)  # refill a memory left out of the checkpoint

    def snapshot(m: int) -> dict:
        state = {"actor": member_state_dict(actor, m), "critics": member_state_dict(critics, m),
                 "critics_target": member_state_dict(nets["critics_target"], m),
                 "optimizers": {name: member_optimizer_state(opt, m) for name, opt in opts.items()},
                 "rng": rngs[m].bit_generator.state, "noise_rng": generators[m].get_state(),
                 "updates": nets["updates"], **population.env_snapshot(envs, obs, m, E)}
        if "actor_target" in nets:
            state["actor_target"] = member_state_dict(nets["actor_target"], m)
        if sac:
            state["log_alpha"] = nets["log_alpha"][m].detach().clone()
        if cfg.save_buffer:
            state["buffer"] = buffers[m].state_dict()
        return state

    def act_of(m: int):
        """Member m's deterministic policy for an evaluation: its weights in an actor built alone."""
        if m not in singles:
            singles[m] = build_actor(cfg, obs_dim, act_dim).to(device).eval()
        singles[m].load_state_dict(member_state_dict(actor, m))
        return deterministic_policy(singles[m], action_space, device, cfg, eval_sample_seed(cfg, runs[m]))

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}  # per statistic: TD3's actor loss exists on delayed updates only
    for run in runs:
        run.start_clock()
    next_log = (step // cfg.log_every + 1) * cfg.log_every
    while step < cfg.total_steps:
        progress = step / cfg.total_steps
        # 1. act: uniformly at random before learning starts (as SB3), then the exploring policy
        if step < cfg.learning_starts:
            actions = np.stack([rng.uniform(-1.0, 1.0, (E, act_dim)) for rng in rngs]).astype(np.float32)
        else:
            actions = explore(obs)
            actions[population.failed()] = 0.0  # a stopped member's envs get a valid action, never its NaNs

        # 2. step the envs (actions rescaled to their bounds); a transition ends in its true final obs
        next_obs, rewards, terminated, truncated, info = envs.step(to_env(actions.reshape(M * E, act_dim)))
        step += E
        population.log_episodes(step, episode_stats(info), E)

        # 3. store, each member in its own memory: d = 0 after a termination, γ after a time limit (bootstrap)
        final_obs = true_next_obs(next_obs, info)
        for m, r in enumerate(rows):
            buffers[m].add(*stores[m].push(obs[r], actions[m], rewards[r], final_obs[r], terminated[r], truncated[r]))
        obs = next_obs

        # 4. learn: one batched gradient step for all members, each on a minibatch of its own memory
        # train_freq counts env steps: a vector step of E env steps may cross several multiples of it
        phases = step // cfg.train_freq - (step - E) // cfg.train_freq
        if step > learn_after and phases:  # SB3: >
            for opt in opts.values():
                set_lr(opt, cfg.lr(progress))
            for _ in range(phases * cfg.gradient_steps):
                batches = [buffer.gather(buffer.sample_indices(cfg.batch_size, rng)) for buffer, rng in zip(buffers, rngs)]
                batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}  # (M, B, ...)
                nets["updates"] += 1
                with matmul_precision(cfg.precision, device):
                    stats = (sac_update if sac else td3_update)(cfg, nets, opts, batch, guard, alive, noise)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
            diverged = guard.diverged()  # before a bad update can reach a checkpoint
            for m in diverged:
                for opt in opts.values():
                    retire_member(opt, m)
                alive[m] = 0.0
            try:
                population.diverged(diverged, cfg.agent_name, step, f"a NaN/Inf loss or gradient in update {nets['updates']:,}")
            except Diverged:
                envs.close()
                raise

        # 5. log, evaluate, checkpoint
        if step >= next_log:
            next_log += cfg.log_every
            for m, run in enumerate(runs):
                if population.alive[m]:
                    scalars = {"charts/learning_rate": opts["actor"].param_groups[0]["lr"],
                               "charts/SPS": step / max(run.wall(), 1e-9), "charts/updates": nets["updates"]}
                    scalars.update({f"losses/{k}": float(v[m]) / counts[k] for k, v in sums.items()})
                    run.log_scalars(step, scalars)
            sums, counts = {}, {}
        if population.after_iteration(step, act_of, snapshot):
            break

    envs.close()
    return population.finish(step, act_of, snapshot)
