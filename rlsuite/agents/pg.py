"""Policy-gradient family: REINFORCE (Williams 1992), A2C (Mnih et al. 2016), PPO (Schulman et al. 2017).

All three share one loop and differ in two places only, visible side by side below:

            targets (section 2)                              update (section 3)
  REINFORCE Monte-Carlo reward-to-go of whole episodes        policy_gradient_update: one step
            (a rollout's unfinished episodes are carried)
  A2C       n-step GAE(λ) bootstrapped from the critic        policy_gradient_update: one step
  PPO       GAE(λ)                                            ppo_update: epochs × minibatches of the
                                                              clipped surrogate, optional KL stop

Loop: 1. collect a rollout of n_steps per env -> 2. targets/advantages -> 3. update -> 4. log,
evaluate, checkpoint. Actions are sampled from a categorical head (Discrete) or a Gaussian head with a
state-independent log-std (Box); Box actions are clipped to the bounds at the env boundary while the
log-probability is of the unclipped sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlsuite.config.schema import CommonConfig, Schedule, param, positive, require, require_hidden
from rlsuite.config.zoo import (
    SB3,
    activation_to_sb3,
    hidden_from_zoo,
    hidden_to_sb3,
    log_std_init_from_zoo,
    log_std_init_to_sb3,
    normalize_from_zoo,
    optimizer_from_zoo,
    pg_activation_from_zoo,
    share_trunk_from_zoo,
)
from rlsuite.core.errors import UserError
from rlsuite.core.seeding import AGENT, WEIGHTS, eval_sample_seed
from rlsuite.envs.make import check_memory, episode_stats, make_vector_env, net_bytes
from rlsuite.learn.nets import (CategoricalHead, GaussianHead, Member, ValueHead, make_trunk, member_state_dict,
                                seeded, stack_members)
from rlsuite.learn.normalization import ObsNormalizer, RewardScaler
from rlsuite.learn.optim import (Diverged, MemberDivergenceGuard, load_member_optimizer_states, make_adam,
                                 member_gradient_step, member_optimizer_state, retire_member, set_lr)
from rlsuite.learn.returns import gae
from rlsuite.learn.rollout import EpisodeCarry, RolloutBuffer
from rlsuite.run.checkpoint import restore_weights
from rlsuite.run.engine import Run
from rlsuite.run.population import Population


# ---------------------------------------------------------------------------------------------
# Configs: what the three share, then each agent's own defaults and extras.
@dataclass
class PGConfig(CommonConfig):
    num_envs: int = param(8, "parallel environments", sb3="n_envs")
    n_steps: int = param(32, "steps per env per rollout", sb3="n_steps")
    gamma: float = param(0.99, "discount factor", sb3="gamma")
    gae_lambda: float = param(0.95, "GAE λ (A2C, PPO)", sb3="gae_lambda")
    lr: Schedule = param(Schedule(3e-4), "learning rate (number or {linear: [start, end(, fraction)]})",
                         sb3="learning_rate")
    optimizer: str = param("adam", "adam or rmsprop", choices=("adam", "rmsprop"),
                           sb3=SB3(from_zoo=optimizer_from_zoo))
    optimizer_eps: float = param(1e-5, "optimizer epsilon", sb3=SB3(fixed=1e-5))
    ent_coef: float = param(0.0, "entropy bonus coefficient", sb3="ent_coef")
    vf_coef: float = param(0.5, "value-loss coefficient", sb3="vf_coef")
    max_grad_norm: float | None = param(0.5, "gradient-norm clip (none to disable)", sb3="max_grad_norm")
    normalize_advantage: bool = param(True, "standardise advantages per (mini)batch", sb3="normalize_advantage")
    hidden: tuple[int, ...] = param((64, 64), "hidden sizes of the actor and of the critic (separate MLPs)",
                                     sb3=SB3("net_arch", from_zoo=hidden_from_zoo, to_sb3=hidden_to_sb3))
    share_trunk: bool = param(False, "one trunk for actor and critic (as SB3's CnnPolicy); else one each",
                              sb3=SB3(from_zoo=share_trunk_from_zoo))
    activation: str = param("tanh", "activation", choices=("relu", "tanh", "elu", "gelu"),
                            sb3=SB3("activation_fn", from_zoo=pg_activation_from_zoo, to_sb3=activation_to_sb3))
    log_std_init: float = param(0.0, "initial log-std of the Gaussian policy (Box actions)",
                                sb3=SB3(from_zoo=log_std_init_from_zoo, to_sb3=log_std_init_to_sb3))
    normalize_obs: bool = param(False, "running mean/std observation normalisation (saved in checkpoints)",
                                sb3=SB3(from_zoo=normalize_from_zoo))
    normalize_reward: bool = param(False, "scale rewards by the running std of the discounted return",
                                   sb3=SB3(from_zoo=normalize_from_zoo))
    log_every: int = param(1, "updates between loss logs")

    def validate(self):
        super().validate()
        require(self, ("n_steps", "optimizer_eps", "log_every"), positive, "positive")
        require(self, ("n_steps",), lambda v: v * self.num_envs <= 10**8, "such that num_envs × n_steps ≤ 1e8")
        require(self, ("lr",), lambda v: 0 <= v <= 10, "a learning rate in [0, 10] (a positive start)")
        require(self, ("gamma", "gae_lambda"), lambda v: 0 <= v <= 1, "in [0, 1]")
        require(self, ("ent_coef", "vf_coef"), lambda v: v >= 0, ">= 0")
        require(self, ("max_grad_norm",), lambda v: v is None or v > 0, "positive (or none)")
        require(self, ("log_std_init",), lambda v: -20 <= v <= 5, "in [-20, 5]")
        require_hidden(self)
        rollout = self.n_steps * self.num_envs
        if rollout > self.total_steps:
            raise UserError(f"one rollout (n_steps × num_envs = {rollout:,} steps) is larger than the budget of "
                            f"{self.total_steps:,} steps; raise --steps or lower n_steps / num_envs")
        if self.lr.start <= 0:
            raise UserError(f"lr must start above 0, got {self.lr.to_data()}")

    def gradient_steps_per_env_step(self) -> float:
        """One gradient step per rollout (REINFORCE, A2C): what tuning's cost term counts."""
        return 1 / (self.n_steps * self.num_envs)


@dataclass
class ReinforceConfig(PGConfig):
    agent_name = "reinforce"
    baseline: bool = param(True, "learned value baseline (subtracted from the Monte-Carlo return)")


@dataclass
class A2CConfig(PGConfig):
    agent_name = "a2c"
    # SB3 logs A2C every 100 updates (log_interval); an A2C update is a few dozen steps, and logging each one
    # costs a good share of the run, N times over in a population of N
    log_every: int = param(100, "updates between loss logs")


@dataclass
class PPOConfig(PGConfig):
    agent_name = "ppo"
    n_epochs: int = param(10, "passes over each rollout", sb3="n_epochs")
    batch_size: int = param(64, "minibatch size", sb3="batch_size")
    clip_range: Schedule = param(Schedule(0.2), "policy ratio clip ε (number or schedule)", sb3="clip_range")
    clip_range_vf: float | None = param(None, "value clipping around the old values (none: off)", sb3="clip_range_vf")
    target_kl: float | None = param(None, "stop the epochs once approx. KL exceeds 1.5 × this (none: off)",
                                    sb3="target_kl")

    def validate(self):
        super().validate()
        require(self, ("n_epochs", "batch_size", "clip_range"), positive, "positive")
        require(self, ("n_epochs",), lambda v: v <= 1000, "at most 1000")
        require(self, ("clip_range_vf", "target_kl"), lambda v: v is None or v > 0, "positive (or none)")
        if self.batch_size > self.n_steps * self.num_envs:
            raise UserError(f"batch_size {self.batch_size} is larger than a rollout (n_steps × num_envs = "
                            f"{self.n_steps * self.num_envs}); lower batch_size")

    def gradient_steps_per_env_step(self) -> float:
        """n_epochs passes of rollout // batch_size minibatches per rollout, as ppo_update splits it (target_kl may
        stop sooner)."""
        rollout = self.n_steps * self.num_envs
        return self.n_epochs * max(rollout // self.batch_size, 1) / rollout


ALGORITHM = {ReinforceConfig: "reinforce", A2CConfig: "a2c", PPOConfig: "ppo"}


# ---------------------------------------------------------------------------------------------
def check_spaces(obs_space, action_space, cfg: PGConfig | None = None, env_card=None) -> None:
    if not isinstance(obs_space, gym.spaces.Box):
        raise UserError(f"policy-gradient agents need Box observations, got {type(obs_space).__name__}; "
                        "flatten them with a wrapper in the env card (e.g. FlattenObservation)")
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise UserError(f"policy-gradient agents support Discrete or Box actions, got {type(action_space).__name__}")
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1:
        raise UserError(f"Box actions must be a flat vector, got shape {action_space.shape}")
    if cfg is not None:
        outputs = int(getattr(action_space, "n", 0) or np.prod(getattr(action_space, "shape", (1,)) or (1,)))
        if len(obs_space.shape) != 3:  # the CNN's size does not grow with hidden sizes the way an MLP's does
            check_memory(net_bytes(obs_space.shape, cfg.hidden, outputs, copies=8),
                         f"a {list(cfg.hidden)} actor and critic (weights, gradients, Adam)", "use smaller hidden sizes")
        rollout = cfg.n_steps * cfg.num_envs * int(np.prod(obs_space.shape)) * np.dtype(rollout_dtype(cfg, obs_space)).itemsize
        check_memory(2 * rollout, f"a rollout of {cfg.n_steps:,} x {cfg.num_envs} observations (and its tensor copy)",
                     "lower n_steps or num_envs")


def rollout_dtype(cfg: PGConfig, obs_space):
    """uint8 frames are stored as they come (normalisation of images is not offered: the CNN scales them)."""
    return np.uint8 if obs_space.dtype == np.uint8 and not cfg.normalize_obs else np.float32


def build_actor_critic(cfg: PGConfig, obs_space, action_space, critic: bool = True) -> nn.ModuleDict:
    """actor: trunk + categorical or Gaussian head (returns a distribution); critic: trunk + value head."""
    uint8 = obs_space.dtype == np.uint8
    net = "auto"  # the CNN for image observations
    trunk = make_trunk(obs_space.shape, net, cfg.hidden, cfg.activation, uint8)
    if isinstance(action_space, gym.spaces.Discrete):
        head = CategoricalHead(trunk.out_dim, int(action_space.n))
    else:
        head = GaussianHead(trunk.out_dim, action_space.shape[0], cfg.log_std_init)
    parts = {"actor": nn.Sequential(trunk, head)}
    if critic:
        # A shared trunk learns from both losses (SB3's CnnPolicy, CleanRL's Atari PPO); its parameters
        # appear once in model.parameters(), so the optimiser steps them once.
        value_trunk = trunk if cfg.share_trunk else make_trunk(obs_space.shape, net, cfg.hidden, cfg.activation, uint8)
        parts["critic"] = nn.Sequential(value_trunk, ValueHead(value_trunk.out_dim))
    return nn.ModuleDict(parts)


def log_prob(dist, actions: torch.Tensor) -> torch.Tensor:
    """Per-sample log π(a|s); a Gaussian's independent dimensions are summed."""
    logp = dist.log_prob(actions)
    return logp.sum(-1) if isinstance(dist, torch.distributions.Normal) else logp


def log_prob_entropy(dist, actions: torch.Tensor):
    """Per-sample log π(a|s) and entropy; a Gaussian's independent dimensions are summed."""
    entropy = dist.entropy()
    return log_prob(dist, actions), entropy.sum(-1) if isinstance(dist, torch.distributions.Normal) else entropy


def deterministic_policy(model: nn.ModuleDict, norm: ObsNormalizer, action_space, device,
                         sample_seed: int | None = None):
    """Evaluation policy (docs/protocol.md): argmax of the logits, or the Gaussian mean clipped to the bounds.
    With a sample_seed, the stochastic evaluation (eval_deterministic: false): actions sampled from the policy's
    distribution with a generator of that seed."""
    trunk, head = model["actor"][0], model["actor"][1]
    box = isinstance(action_space, gym.spaces.Box)
    generator = torch.Generator(device=device).manual_seed(sample_seed) if sample_seed is not None else None

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        features = trunk(torch.as_tensor(norm(obs), device=device))
        if generator is None:
            action = head.mode(features).cpu().numpy()
        else:
            dist = head(features)
            normal = isinstance(dist, torch.distributions.Normal)
            draw = torch.randn if normal else torch.rand  # standard normals, or uniforms for the inverse CDF
            noise = draw(dist.mean.shape if normal else dist.probs.shape[:-1], generator=generator, device=device)
            action = sample_actions(dist, noise).cpu().numpy()
        return np.clip(action, action_space.low, action_space.high) if box else action

    return act


def load_policy(cfg: PGConfig, spaces, state: dict, device, sample_seed: int | None = None):
    obs_space, action_space = spaces
    model = build_actor_critic(cfg, obs_space, action_space, critic="critic" in state["model_keys"]).to(device)
    model.load_state_dict(state["model"])
    norm = ObsNormalizer(obs_space.shape, cfg.normalize_obs)
    norm.rms.load_state_dict(state["obs_norm"])
    return deterministic_policy(model, norm, action_space, device, sample_seed)


# ---------------------------------------------------------------------------------------------
# Losses and updates, for a population: every tensor has a leading member axis M (M = 1 for a single run),
# each loss is a mean over its member's own samples, and the (M,) losses go to member_gradient_step, which
# clips each member's gradient by its own norm. The value loss is SB3's (plain MSE, weighted by vf_coef).
def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """Clipped surrogate: -E[min(r A, clip(r, 1-ε, 1+ε) A)] with r = π/π_old (the mean over the last axis)."""
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean(-1)


def _normalize(adv: torch.Tensor, enabled: bool) -> torch.Tensor:
    """Standardised over each member's own samples (the last axis)."""
    if not enabled or adv.shape[-1] <= 1:
        return adv
    return (adv - adv.mean(-1, keepdim=True)) / (adv.std(-1, keepdim=True) + 1e-8)


def policy_and_values(model, obs: torch.Tensor):
    """π(.|obs) and V(obs) (None without a critic); a trunk shared by both runs once."""
    trunk, head = model["actor"][0], model["actor"][1]
    if "critic" in model and model["critic"][0] is trunk:
        features = trunk(obs)
        return head(features), model["critic"][1](features)
    return head(trunk(obs)), (model["critic"](obs) if "critic" in model else None)


def policy_gradient_update(model, optimizer, batch: dict, cfg: PGConfig, progress: float, rngs, guard, alive) -> dict:
    """REINFORCE and A2C: one gradient step of -log π(a|s) A + vf_coef (V - R)^2 - ent_coef H."""
    dist, values = policy_and_values(model, batch["obs"])
    logp, entropy = log_prob_entropy(dist, batch["actions"])
    adv = _normalize(batch["advantages"], cfg.normalize_advantage)
    policy_loss = -(logp * adv).mean(-1)
    value_loss = torch.zeros_like(policy_loss)
    if values is not None:
        value_loss = (values - batch["returns"]).pow(2).mean(-1)
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy.mean(-1)
    member_gradient_step(optimizer, loss, alive, cfg.max_grad_norm, guard)
    return {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": entropy.mean(-1).detach()}


def ppo_update(model, optimizer, batch: dict, cfg: PPOConfig, progress: float, rngs, guard, alive) -> dict:
    """PPO: n_epochs passes of shuffled minibatches over the rollout, clipped surrogate objective. Each member
    shuffles its own samples with its own generator. The logged losses and diagnostics are means over every
    minibatch of every epoch, the one that tripped the target-KL stop included (its step is not taken)."""
    clip = cfg.clip_range(progress)
    members, n = batch["advantages"].shape
    n_minibatches = max(n // cfg.batch_size, 1)
    offsets = torch.arange(members)[:, None] * n  # member m's samples start at row m*n of the flattened batch
    flat = {k: v.flatten(0, 1) for k, v in batch.items()}  # (M, n, ...) -> (M*n, ...)
    stats = []
    kl_stop = False
    for epoch in range(cfg.n_epochs):
        # One minibatch per epoch is the whole rollout: its order cannot change the gradient, so no shuffle.
        if n_minibatches == 1:
            order = [None]
        else:
            permutations = torch.as_tensor(np.stack([rng.permutation(n) for rng in rngs]))
            order = torch.tensor_split(permutations, n_minibatches, dim=1)  # np.array_split's sizes
        for mb in order:
            if mb is None:
                b = batch
            else:  # each member's own minibatch: one index_select per field
                index = (mb + offsets).flatten()
                b = {k: v.index_select(0, index).view(members, -1, *v.shape[1:]) for k, v in flat.items()}
            dist, values = policy_and_values(model, b["obs"])
            logp, entropy = log_prob_entropy(dist, b["actions"])
            adv = _normalize(b["advantages"], cfg.normalize_advantage)
            policy_loss = ppo_policy_loss(logp, b["logprobs"], adv, clip)
            if cfg.clip_range_vf is not None:  # keep the new values near the old ones, as for the policy
                values = b["values"] + torch.clamp(values - b["values"], -cfg.clip_range_vf, cfg.clip_range_vf)
            value_loss = (values - b["returns"]).pow(2).mean(-1)
            loss = policy_loss + cfg.vf_coef * value_loss
            if cfg.ent_coef:
                loss = loss - cfg.ent_coef * entropy.mean(-1)
            with torch.no_grad():
                log_ratio = logp - b["logprobs"]
                approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean(-1)  # Schulman's k3 estimator
                clipped = ((log_ratio.exp() - 1).abs() > clip).float().mean(-1)
            stats.append(torch.stack([policy_loss.detach(), value_loss.detach(), entropy.mean(-1).detach(),
                                      approx_kl, clipped], 1))
            if cfg.target_kl is not None and approx_kl.max().item() > 1.5 * cfg.target_kl:
                kl_stop = True  # the policy moved too far from the one that collected the rollout (one member)
                break
            member_gradient_step(optimizer, loss, alive, cfg.max_grad_norm, guard)
        if kl_stop:
            break
    names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    mean = torch.stack(stats).mean(0)  # (M, 5)
    out = {name: mean[:, i] for i, name in enumerate(names)}
    out["clip_range"] = torch.full((members,), float(clip))
    out["epochs"] = torch.full((members,), float(epoch + 1))
    out["kl_stop"] = torch.full((members,), float(kl_stop))
    return out


UPDATES = {"reinforce": policy_gradient_update, "a2c": policy_gradient_update, "ppo": ppo_update}


def sample_actions(dist, noise: torch.Tensor) -> torch.Tensor:
    """A sample of `dist` from noise drawn by each member's own generator: inverse CDF of a categorical from
    uniforms, mean + std × standard normals for a Gaussian."""
    if isinstance(dist, torch.distributions.Normal):
        return dist.mean + dist.stddev * noise
    cdf = dist.probs.cumsum(-1)
    return (cdf < noise.unsqueeze(-1)).sum(-1).clamp(max=cdf.shape[-1] - 1)


def members_first(x: np.ndarray, members: int) -> np.ndarray:
    """(T, M*E, ...) rollout arrays -> (M, T*E, ...): each member's samples together."""
    t, n = x.shape[:2]
    return x.reshape(t, members, n // members, *x.shape[2:]).swapaxes(0, 1).reshape(members, -1, *x.shape[2:])


def steps_first(x: np.ndarray, steps: int) -> np.ndarray:
    """The inverse of members_first: (M, T*E) -> (T, M*E)."""
    members = x.shape[0]
    return x.reshape(members, steps, -1).swapaxes(0, 1).reshape(steps, -1)


# ---------------------------------------------------------------------------------------------
def batchable(cfg: PGConfig) -> bool:
    """Whether seeds of this config train as one population (else one after another)."""
    return ALGORITHM[type(cfg)] != "reinforce" and getattr(cfg, "target_kl", None) is None


def train(cfg: PGConfig, run: Run) -> dict:
    """One run: a population of one."""
    with Population([run]) as population:
        return train_population(cfg, population)[0]


def train_population(cfg: PGConfig, population: Population) -> list[dict]:
    algo = ALGORITHM[type(cfg)]
    runs, M, E, T = population.runs, population.size, cfg.num_envs, cfg.n_steps
    device = population.device
    if M > 1 and algo == "reinforce":
        raise UserError("REINFORCE trains one seed at a time (its whole-episode batches differ in size per member)")
    if M > 1 and getattr(cfg, "target_kl", None) is not None:
        raise UserError("target_kl stops a member's epochs on its own KL; populations do not support it yet: "
                        "train those seeds one at a time")
    envs = make_vector_env(runs[0].env_card, M * E)  # member m steps sub-envs m*E .. m*E+E-1
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space)
    box = isinstance(action_space, gym.spaces.Box)
    use_critic = algo != "reinforce" or cfg.baseline
    # one network per member from its own seed, stacked into one: weights (M, ...), inputs (M, E, ...)
    model = stack_members([seeded(run.seeds.torch_seed(WEIGHTS), build_actor_critic, cfg, obs_space, action_space, use_critic)
                           for run in runs]).to(device)
    if cfg.optimizer == "rmsprop":  # SB3's A2C default: RMSprop(alpha=0.99)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr(0.0), eps=cfg.optimizer_eps, alpha=0.99)
    else:
        optimizer = make_adam(model.parameters(), cfg.lr(0.0), cfg.optimizer_eps)
    norm = ObsNormalizer(obs_space.shape, cfg.normalize_obs, members=M)
    scaler = RewardScaler(E, cfg.gamma, cfg.normalize_reward, members=M)
    rollout = RolloutBuffer(T, M * E, obs_space.shape, action_space.shape, obs_dtype=rollout_dtype(cfg, obs_space),
                            action_dtype=np.float32 if box else np.int64)
    episodes = EpisodeCarry(E, obs_space.shape, action_space.shape, rollout.actions.dtype)  # REINFORCE: M = 1
    rngs = [run.seeds.numpy(AGENT) for run in runs]  # each member's minibatch order
    generators = [torch.Generator().manual_seed(run.seeds.torch_seed(AGENT)) for run in runs]  # each member's action noise
    update_fn = UPDATES[algo]
    guard = MemberDivergenceGuard(M)
    alive = torch.ones(M, device=device)
    singles: dict[int, tuple] = {}  # member -> (network, normaliser) for its evaluations

    step, updates = 0, 0
    if runs[0].restored:
        states = [run.restored["state"] for run in runs]
        for m, s in enumerate(states):
            restore_weights(Member(model, m), s["model"], runs[m])
        load_member_optimizer_states(optimizer, [s["optimizer"] for s in states])
        norm.rms.load_member_states([s["obs_norm"] for s in states])
        scaler.load_member_states([s["reward_scaler"] for s in states])
        if "episodes" in states[0]:
            episodes.load_state_dict(states[0]["episodes"])
        for m, s in enumerate(states):
            rngs[m].bit_generator.state = s["rng"]
            if "action_rng" in s:
                generators[m].set_state(s["action_rng"])
        step, updates = runs[0].restored["step"], states[0]["updates"]
    obs = population.reset_envs(envs, E)
    if population.envs_restarted:  # fresh episodes: the carried steps' episodes will never end
        episodes.clear()
        scaler.returns[:] = 0.0

    def member_obs(x: np.ndarray) -> np.ndarray:
        return x.reshape(M, -1, *x.shape[1:])  # (M*E, ...) -> (M, E, ...)

    def values_of(x: np.ndarray) -> np.ndarray:
        """V of each member on its own (M, B, ...) observations -> (M, B)."""
        if not use_critic:
            return np.zeros(x.shape[:2], np.float32)
        return model["critic"](torch.as_tensor(x, device=device)).cpu().numpy()

    def snapshot(m: int) -> dict:
        return {"model": member_state_dict(model, m), "model_keys": list(model.keys()),
                "optimizer": member_optimizer_state(optimizer, m), "obs_norm": norm.rms.member_state(m),
                "reward_scaler": scaler.member_state(m), "rng": rngs[m].bit_generator.state,
                "action_rng": generators[m].get_state(), "updates": updates, "episodes": episodes.state_dict(),
                **population.env_snapshot(envs, obs, m, E)}

    def act_of(m: int):
        """Member m's deterministic policy for an evaluation: its weights in a network built alone."""
        if m not in singles:
            singles[m] = (build_actor_critic(cfg, obs_space, action_space, critic=use_critic).to(device),
                          ObsNormalizer(obs_space.shape, cfg.normalize_obs))
        single, single_norm = singles[m]
        single.load_state_dict(member_state_dict(model, m))
        single_norm.rms.load_state_dict(norm.rms.member_state(m))
        return deterministic_policy(single, single_norm, action_space, device, eval_sample_seed(cfg, runs[m]))

    for run in runs:
        run.start_clock()
    while step < cfg.total_steps:
        progress = step / cfg.total_steps
        # 1. collect n_steps per env with the current stochastic policy; each member's noise from its generator
        shape = (T, E, action_space.shape[0]) if box else (T, E)
        draw = torch.randn if box else torch.rand
        noise = torch.stack([draw(shape, generator=g) for g in generators], 1).to(device)  # (T, M, E, ...)
        final_obs = []  # (t, env, true final observation) at time limits
        finite = torch.ones(M, dtype=torch.bool, device=device)  # each member's action probabilities, read once
        with torch.no_grad():
            for t in range(T):
                obs_n = norm(member_obs(obs), update=True)  # (M, E, ...), each member's own statistics
                dist = model["actor"](torch.as_tensor(obs_n, device=device))
                action = sample_actions(dist, noise[t])
                logp = log_prob(dist, action)  # the entropy is the update's business: not computed here
                finite &= torch.isfinite(logp).all(-1)
                action = action.cpu().numpy().reshape(M * E, *action_space.shape)
                for m in population.failed():  # a stopped member's envs get a valid action, never its NaNs
                    action[m * E:(m + 1) * E] = 0
                env_action = np.clip(action, action_space.low, action_space.high) if box else action
                next_obs, reward, terminated, truncated, info = envs.step(env_action)
                step += E
                population.log_episodes(step, episode_stats(info), E)
                # A time limit is not a terminal state: keep the true final obs to bootstrap from.
                time_limit = truncated & ~terminated
                final_obs += [(t, i, info["final_obs"][i]) for i in np.flatnonzero(time_limit)]
                rollout.obs[t], rollout.actions[t] = obs_n.reshape(M * E, *obs_n.shape[2:]), action
                rollout.logprobs[t] = logp.cpu().numpy().reshape(-1)
                rollout.rewards[t] = scaler(member_obs(reward), member_obs(terminated | truncated)).reshape(-1)
                rollout.terminated[t], rollout.truncated[t] = terminated, time_limit
                obs = next_obs
            # The critic is fixed during collection, so all its values come from one batched pass.
            if algo != "reinforce":  # REINFORCE rates a step when its episode ends, possibly later
                rollout.values[:] = steps_first(values_of(members_first(rollout.obs, M)), T)
            rollout.truncated_values[:] = 0.0
            if final_obs and use_critic:
                # every member's critic on every final obs (few: time limits), each keeping its own
                t_idx, env_idx, finals = zip(*final_obs)
                v = values_of(norm(np.repeat(np.stack(finals)[None], M, axis=0)))  # (M, K)
                rollout.truncated_values[list(t_idx), list(env_idx)] = v[np.array(env_idx) // E, np.arange(len(finals))]
            last_values = values_of(norm(member_obs(obs))).reshape(-1)
        broken = [m for m in torch.nonzero(~finite).flatten().tolist() if population.alive[m]]
        for m in broken:  # NaN/Inf weights or observations: the member stops before its NaNs reach an update
            retire_member(optimizer, m)
            alive[m] = 0.0
            try:
                population.fail(m, f"{algo} diverged: the policy produced NaN/Inf action probabilities at step {step:,}",
                                "lower lr or enable normalize_obs")
            except Diverged:
                envs.close()
                raise

        # 2. targets: Monte-Carlo returns of the episodes that ended (REINFORCE) or GAE (A2C, PPO)
        if algo == "reinforce":
            done = episodes.add(rollout.obs, rollout.actions, rollout.rewards, rollout.terminated,
                                rollout.truncated, rollout.truncated_values, cfg.gamma)
            if done:
                done = {k: v[None] for k, v in done.items()}  # a population of one: (1, B, ...)
                with torch.no_grad():  # the baseline of the current critic, subtracted from each return
                    done["advantages"] = done["returns"] - values_of(done["obs"])
            batch = {name: torch.as_tensor(value, device=device) for name, value in done.items()}
        else:
            advantages, returns = gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated,
                                      last_values, cfg.gamma, cfg.gae_lambda, rollout.truncated_values)
            batch = {name: torch.as_tensor(members_first(value, M), device=device) for name, value in
                     (("obs", rollout.obs), ("actions", rollout.actions), ("logprobs", rollout.logprobs),
                      ("values", rollout.values), ("advantages", advantages.astype(np.float32)),
                      ("returns", returns.astype(np.float32)))}  # (T, M*E, ...) -> (M, T*E, ...)

        # 3. update
        set_lr(optimizer, cfg.lr(progress))
        stats = {}
        if batch:  # REINFORCE waits until some episode has ended
            stats = update_fn(model, optimizer, batch, cfg, progress, rngs, guard, alive)
            updates += 1
            diverged = guard.diverged()  # before a bad update can reach a checkpoint
            for m in diverged:
                retire_member(optimizer, m)
                alive[m] = 0.0
            try:
                population.diverged(diverged, algo, step, f"a NaN/Inf loss or gradient in update {updates:,}")
            except Diverged:
                envs.close()
                raise

        # 4. log, evaluate, checkpoint
        if stats and updates % cfg.log_every == 0:
            rows = torch.stack(list(stats.values()), 1).tolist()  # (M, k)
            for m, run in enumerate(runs):
                if population.alive[m]:
                    run.log_scalars(step, {f"losses/{k}": v for k, v in zip(stats, rows[m])} |
                                    {"charts/learning_rate": optimizer.param_groups[0]["lr"],
                                     "charts/SPS": step / max(run.wall(), 1e-9)})
        if population.after_iteration(step, act_of, snapshot):
            break

    envs.close()
    return population.finish(step, act_of, snapshot)
