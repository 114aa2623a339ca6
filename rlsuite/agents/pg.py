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
from rlsuite.envs.make import check_memory, episode_stats, make_vector_env, net_bytes
from rlsuite.learn.nets import CategoricalHead, GaussianHead, ValueHead, make_trunk
from rlsuite.learn.normalization import ObsNormalizer, RewardScaler
from rlsuite.learn.optim import Diverged, DivergenceGuard, gradient_step, make_adam, set_lr
from rlsuite.learn.returns import gae
from rlsuite.learn.rollout import EpisodeCarry, RolloutBuffer
from rlsuite.run.checkpoint import env_snapshot, restore_weights
from rlsuite.run.engine import Run


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


@dataclass
class ReinforceConfig(PGConfig):
    agent_name = "reinforce"
    baseline: bool = param(True, "learned value baseline (subtracted from the Monte-Carlo return)")


@dataclass
class A2CConfig(PGConfig):
    agent_name = "a2c"


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


def deterministic_policy(model: nn.ModuleDict, norm: ObsNormalizer, action_space, device):
    """Evaluation policy (docs/protocol.md): argmax of the logits, or the Gaussian mean clipped to the bounds."""
    trunk, head = model["actor"][0], model["actor"][1]
    box = isinstance(action_space, gym.spaces.Box)

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        action = head.mode(trunk(torch.as_tensor(norm(obs), device=device))).cpu().numpy()
        return np.clip(action, action_space.low, action_space.high) if box else action

    return act


def load_policy(cfg: PGConfig, spaces, state: dict, device):
    obs_space, action_space = spaces
    model = build_actor_critic(cfg, obs_space, action_space, critic="critic" in state["model_keys"]).to(device)
    model.load_state_dict(state["model"])
    norm = ObsNormalizer(obs_space.shape, cfg.normalize_obs)
    norm.rms.load_state_dict(state["obs_norm"])
    return deterministic_policy(model, norm, action_space, device)


# ---------------------------------------------------------------------------------------------
# Losses and updates. The value loss is SB3's (plain MSE, weighted by vf_coef).
def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """Clipped surrogate: -E[min(r A, clip(r, 1-ε, 1+ε) A)] with r = π/π_old."""
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean()


def _normalize(adv: torch.Tensor, enabled: bool) -> torch.Tensor:
    return (adv - adv.mean()) / (adv.std() + 1e-8) if enabled and len(adv) > 1 else adv


def policy_and_values(model, obs: torch.Tensor):
    """π(.|obs) and V(obs) (None without a critic); a trunk shared by both runs once."""
    trunk, head = model["actor"][0], model["actor"][1]
    if "critic" in model and model["critic"][0] is trunk:
        features = trunk(obs)
        return head(features), model["critic"][1](features)
    return head(trunk(obs)), (model["critic"](obs) if "critic" in model else None)


def policy_gradient_update(model, optimizer, batch: dict, cfg: PGConfig, progress: float, rng, guard) -> dict:
    """REINFORCE and A2C: one gradient step of -log π(a|s) A + vf_coef (V - R)^2 - ent_coef H."""
    dist, values = policy_and_values(model, batch["obs"])
    logp, entropy = log_prob_entropy(dist, batch["actions"])
    adv = _normalize(batch["advantages"], cfg.normalize_advantage)
    policy_loss = -(logp * adv).mean()
    value_loss = torch.zeros(())
    if values is not None:
        value_loss = (values - batch["returns"]).pow(2).mean()
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy.mean()
    gradient_step(optimizer, loss, cfg.max_grad_norm, guard)
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.mean().item()}


def ppo_update(model, optimizer, batch: dict, cfg: PPOConfig, progress: float, rng, guard) -> dict:
    """PPO: n_epochs passes of shuffled minibatches over the rollout, clipped surrogate objective.
    The logged losses and diagnostics are means over every minibatch of every epoch, the one that
    tripped the target-KL stop included (its step is not taken)."""
    clip = cfg.clip_range(progress)
    n = len(batch["advantages"])
    n_minibatches = max(n // cfg.batch_size, 1)
    stats = []
    kl_stop = False
    for epoch in range(cfg.n_epochs):
        # One minibatch per epoch is the whole rollout: its order cannot change the gradient, so no shuffle.
        order = [None] if n_minibatches == 1 else [torch.as_tensor(mb) for mb in
                                                   np.array_split(rng.permutation(n), n_minibatches)]
        for mb in order:
            b = batch if mb is None else {k: v[mb] for k, v in batch.items()}
            dist, values = policy_and_values(model, b["obs"])
            logp, entropy = log_prob_entropy(dist, b["actions"])
            adv = _normalize(b["advantages"], cfg.normalize_advantage)
            policy_loss = ppo_policy_loss(logp, b["logprobs"], adv, clip)
            if cfg.clip_range_vf is not None:  # keep the new values near the old ones, as for the policy
                values = b["values"] + torch.clamp(values - b["values"], -cfg.clip_range_vf, cfg.clip_range_vf)
            value_loss = (values - b["returns"]).pow(2).mean()
            loss = policy_loss + cfg.vf_coef * value_loss
            if cfg.ent_coef:
                loss = loss - cfg.ent_coef * entropy.mean()
            with torch.no_grad():
                log_ratio = logp - b["logprobs"]
                approx_kl = ((log_ratio.exp() - 1) - log_ratio).mean()  # Schulman's k3 estimator
                clipped = ((log_ratio.exp() - 1).abs() > clip).float().mean()
            stats.append(torch.stack([policy_loss.detach(), value_loss.detach(), entropy.mean().detach(),
                                      approx_kl, clipped]))
            if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                kl_stop = True  # the policy moved too far from the one that collected the rollout
                break
            gradient_step(optimizer, loss, cfg.max_grad_norm, guard)
        if kl_stop:
            break
    names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    out = dict(zip(names, torch.stack(stats).mean(0).tolist()))
    out["clip_range"] = clip
    out["epochs"] = epoch + 1
    out["kl_stop"] = float(kl_stop)
    return out


UPDATES = {"reinforce": policy_gradient_update, "a2c": policy_gradient_update, "ppo": ppo_update}


# ---------------------------------------------------------------------------------------------
def train(cfg: PGConfig, run: Run) -> dict:
    algo = ALGORITHM[type(cfg)]
    device = run.device
    envs = make_vector_env(run.env_card, cfg.num_envs)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space)
    box = isinstance(action_space, gym.spaces.Box)
    use_critic = algo != "reinforce" or cfg.baseline
    model = build_actor_critic(cfg, obs_space, action_space, critic=use_critic).to(device)
    if cfg.optimizer == "rmsprop":  # SB3's A2C default: RMSprop(alpha=0.99)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr(0.0), eps=cfg.optimizer_eps, alpha=0.99)
    else:
        optimizer = make_adam(model.parameters(), cfg.lr(0.0), cfg.optimizer_eps)
    norm = ObsNormalizer(obs_space.shape, cfg.normalize_obs)
    scaler = RewardScaler(cfg.num_envs, cfg.gamma, cfg.normalize_reward)
    rollout = RolloutBuffer(cfg.n_steps, cfg.num_envs, obs_space.shape, action_space.shape, obs_dtype=rollout_dtype(cfg, obs_space),
                            action_dtype=np.float32 if box else np.int64)
    episodes = EpisodeCarry(cfg.num_envs, obs_space.shape, action_space.shape, rollout.actions.dtype)
    rng = np.random.default_rng(run.seed)  # minibatch shuffling
    act = deterministic_policy(model, norm, action_space, device)
    update_fn = UPDATES[algo]
    guard = DivergenceGuard()

    step, updates = 0, 0
    obs, _ = envs.reset(seed=run.seed)
    if run.restored:
        s = run.restored["state"]
        restore_weights(model, s["model"], run)
        optimizer.load_state_dict(s["optimizer"])
        norm.rms.load_state_dict(s["obs_norm"])
        scaler.load_state_dict(s["reward_scaler"])
        if "episodes" in s:
            episodes.load_state_dict(s["episodes"])
        rng.bit_generator.state = s["rng"]
        step, updates = run.restored["step"], s["updates"]
        obs = run.restore_envs(envs)
        if run.envs_restarted:  # fresh episodes: the carried steps' episodes will never end
            episodes.clear()
            scaler.returns[:] = 0.0

    def snapshot() -> dict:
        return {"model": model.state_dict(), "model_keys": list(model.keys()), "optimizer": optimizer.state_dict(),
                "obs_norm": norm.rms.state_dict(), "reward_scaler": scaler.state_dict(),
                "rng": rng.bit_generator.state, "updates": updates, "episodes": episodes.state_dict(),
                **env_snapshot(envs, obs)}

    def values_of(x: np.ndarray) -> np.ndarray:
        if not use_critic:
            return np.zeros(len(x), np.float32)
        return model["critic"](torch.as_tensor(x, device=device)).cpu().numpy()

    run.start_clock()
    while step < cfg.total_steps:
        progress = step / cfg.total_steps
        # 1. collect n_steps per env with the current stochastic policy
        final_obs = []  # (t, env, true final observation) at time limits
        try:
            with torch.no_grad():
                for t in range(cfg.n_steps):
                    obs_n = norm(obs, update=True)
                    dist = model["actor"](torch.as_tensor(obs_n, device=device))
                    action = dist.sample()
                    logp = log_prob(dist, action)  # the entropy is the update's business: not computed here
                    action = action.cpu().numpy()
                    env_action = np.clip(action, action_space.low, action_space.high) if box else action
                    next_obs, reward, terminated, truncated, info = envs.step(env_action)
                    step += cfg.num_envs
                    for _, episode_return, length in episode_stats(info):
                        run.log_episode(step, episode_return, length)
                    # A time limit is not a terminal state: keep the true final obs to bootstrap from.
                    time_limit = truncated & ~terminated
                    final_obs += [(t, i, info["final_obs"][i]) for i in np.flatnonzero(time_limit)]
                    rollout.obs[t], rollout.actions[t], rollout.logprobs[t] = obs_n, action, logp.cpu().numpy()
                    rollout.rewards[t] = scaler(reward, terminated | truncated)
                    rollout.terminated[t], rollout.truncated[t] = terminated, time_limit
                    obs = next_obs
                # The critic is fixed during collection, so all its values come from one batched pass.
                if algo != "reinforce":  # REINFORCE rates a step when its episode ends, possibly later
                    rollout.values[:] = values_of(rollout.flat("obs")).reshape(cfg.n_steps, cfg.num_envs)
                rollout.truncated_values[:] = 0.0
                if final_obs and use_critic:
                    t_idx, env_idx, finals = zip(*final_obs)
                    rollout.truncated_values[list(t_idx), list(env_idx)] = values_of(norm(np.stack(finals)))
                last_values = values_of(norm(obs))
        except RuntimeError as e:  # sampling from NaN/Inf logits: the weights are already broken
            if "nan" not in str(e).lower() and "inf" not in str(e).lower():
                raise
            envs.close()
            raise Diverged(f"{algo} diverged: the policy produced NaN/Inf action probabilities at step {step:,} "
                           f"({str(e).splitlines()[0][:80]}); training stopped, {run.last_good()}; lower lr or "
                           "enable normalize_obs") from None

        # 2. targets: Monte-Carlo returns of the episodes that ended (REINFORCE) or GAE (A2C, PPO)
        if algo == "reinforce":
            done = episodes.add(rollout.obs, rollout.actions, rollout.rewards, rollout.terminated,
                                rollout.truncated, rollout.truncated_values, cfg.gamma)
            if done:
                with torch.no_grad():  # the baseline of the current critic, subtracted from each return
                    done["advantages"] = done["returns"] - values_of(done["obs"])
            batch = {name: torch.as_tensor(value, device=device) for name, value in done.items()}
        else:
            advantages, returns = gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated,
                                      last_values, cfg.gamma, cfg.gae_lambda, rollout.truncated_values)
            batch = {name: torch.as_tensor(value.reshape(-1, *value.shape[2:]), device=device) for name, value in
                     (("obs", rollout.obs), ("actions", rollout.actions), ("logprobs", rollout.logprobs),
                      ("values", rollout.values), ("advantages", advantages.astype(np.float32)),
                      ("returns", returns.astype(np.float32)))}  # (T, N, ...) -> (T*N, ...)

        # 3. update
        set_lr(optimizer, cfg.lr(progress))
        stats = {}
        if batch:  # REINFORCE waits until some episode has ended
            stats = update_fn(model, optimizer, batch, cfg, progress, rng, guard)
            updates += 1
            try:
                guard.check(algo, updates, step, run.last_good())  # before a bad update can reach a checkpoint
            except Diverged:
                envs.close()
                raise

        # 4. log, evaluate, checkpoint
        if stats and updates % cfg.log_every == 0:
            run.log_scalars(step, {f"losses/{k}": v for k, v in stats.items()} |
                            {"charts/learning_rate": optimizer.param_groups[0]["lr"],
                             "charts/SPS": step / max(run.wall(), 1e-9)})
        if run.after_iteration(step, act, snapshot):
            break

    envs.close()
    return run.finish(step, act, snapshot())
