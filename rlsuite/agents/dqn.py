"""Deep Q-Network (Mnih et al. 2015) with the usual switches.

  double       Double DQN (van Hasselt et al. 2016): the online net picks a', the target net rates it
  dueling      dueling head (Wang et al. 2016): Q = V + A - mean(A)
  n_step       n-step returns (Sutton 1988), cut at episode ends
  prioritized  proportional prioritized replay (Schaul et al. 2016), beta annealed to 1
  tau          1 = hard target copies every `target_update_interval` env steps; < 1 = Polyak averaging

Loop (one iteration = one step of every env in the vector env):
  act ε-greedily (uniformly at random before learning_starts) -> step the envs -> store (n-step) transitions
  -> every `train_freq` env steps (counted over all envs, as SB3 counts them for one env) do `gradient_steps` TD
  updates -> update the target net -> log, evaluate, checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.config.schema import CommonConfig, Schedule, param, positive, require, require_hidden
from rlsuite.config.zoo import (
    SB3,
    activation_to_sb3,
    epsilon_from_zoo,
    gradient_steps_from_zoo,
    hidden_from_zoo,
    hidden_to_sb3,
    train_freq_from_zoo,
    train_freq_to_sb3,
)
from rlsuite.core.errors import UserError
from rlsuite.core.seeding import AGENT, WEIGHTS, eval_sample_seed
from rlsuite.envs.make import (
    check_memory,
    episode_stats,
    make_vector_env,
    net_bytes,
    require_box_obs,
    require_discrete,
    true_next_obs,
)
from rlsuite.learn.frame_replay import FrameReplayBuffer, frame_replay_bytes
from rlsuite.learn.nets import (DuelingQHead, Member, QHead, load_member_state, make_trunk, member_state_dict, seeded,
                                stack_members)
from rlsuite.learn.optim import (Diverged, MemberDivergenceGuard, load_member_optimizer_states, make_adam,
                                 member_gradient_step, member_optimizer_state, retire_member, set_lr, update_target)
from rlsuite.learn.replay import NStepAccumulator, PrioritizedReplayBuffer, ReplayBuffer, naive_replay_bytes
from rlsuite.run.checkpoint import restore_weights
from rlsuite.run.engine import Run
from rlsuite.run.population import Population


@dataclass
class DQNConfig(CommonConfig):
    agent_name = "dqn"
    lr: Schedule = param(Schedule(1e-3), "Adam learning rate (number or {linear: [start, end(, fraction)]})",
                         sb3="learning_rate")
    adam_eps: float = param(1e-8, "Adam epsilon")
    batch_size: int = param(64, "transitions per gradient step", sb3="batch_size")
    buffer_size: int = param(100_000, "replay capacity in transitions", sb3="buffer_size")
    learning_starts: int = param(1_000, "env steps of uniformly random actions (as SB3) before the first update",
                                 sb3="learning_starts")
    gamma: float = param(0.99, "discount factor", sb3="gamma")
    train_freq: int = param(1, "env steps between update phases",
                             sb3=SB3("train_freq", from_zoo=train_freq_from_zoo, to_sb3=train_freq_to_sb3))
    gradient_steps: int = param(1, "gradient steps per update phase",
                                 sb3=SB3("gradient_steps", from_zoo=gradient_steps_from_zoo))
    target_update_interval: int = param(500, "env steps between target-network updates (SB3's convention)",
                                         sb3="target_update_interval")
    tau: float = param(1.0, "target update rate: 1 = hard copy, < 1 = Polyak averaging", sb3="tau")
    epsilon: Schedule = param(Schedule(1.0, 0.05, 0.1), "ε-greedy schedule over training progress",
                              sb3=SB3(from_zoo=epsilon_from_zoo))
    double: bool = param(False, "Double DQN targets", sb3=SB3(fixed=False))
    dueling: bool = param(False, "dueling Q head", sb3=SB3(fixed=False))
    n_step: int = param(1, "steps per return before bootstrapping", sb3=SB3(fixed=1))
    prioritized: bool = param(False, "proportional prioritized replay", sb3=SB3(fixed=False))
    per_alpha: float = param(0.6, "priority exponent alpha")
    per_beta: Schedule = param(Schedule(0.4, 1.0), "importance-sampling exponent beta over training")
    per_eps: float = param(1e-6, "added to |TD error| so no priority is zero")
    loss: str = param("huber", "TD loss", choices=("huber", "mse"), sb3=SB3(fixed="huber"))
    max_grad_norm: float | None = param(10.0, "gradient-norm clip (none to disable)", sb3="max_grad_norm")
    net: str = param("auto", "trunk: auto (cnn for image observations, else mlp), mlp or cnn",
                     choices=("auto", "mlp", "cnn"))
    share_frames: bool = param(True, "store each frame once when the env card stacks frames (frame_stack > 1)")
    hidden: tuple[int, ...] = param((64, 64), "MLP hidden sizes (for cnn: the width of the last layer)",
                                     sb3=SB3("net_arch", from_zoo=hidden_from_zoo, to_sb3=hidden_to_sb3))
    activation: str = param("relu", "MLP activation", choices=("relu", "tanh", "elu", "gelu"),
                            sb3=SB3("activation_fn", to_sb3=activation_to_sb3))
    log_every: int = param(1_000, "env steps between loss/charts logs")

    def gradient_steps_per_env_step(self) -> float:
        """gradient_steps each time the env-step count crosses a multiple of train_freq: what tuning's cost term
        counts."""
        return self.gradient_steps / self.train_freq

    def validate(self):
        super().validate()
        require(self, ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval", "n_step",
                       "log_every"), positive, "positive")
        require(self, ("lr",), lambda v: v >= 0, "a learning rate >= 0 (a positive start)")
        require(self, ("lr",), lambda v: v <= 10, "at most 10 (a learning rate)")
        require(self, ("adam_eps", "per_eps"), positive, "positive")
        require(self, ("tau",), lambda v: 0 < v <= 1, "in (0, 1]")
        require(self, ("gamma", "per_alpha"), lambda v: 0 <= v <= 1, "in [0, 1]")
        require(self, ("epsilon", "per_beta"), lambda v: 0 <= v <= 1, "in [0, 1] (a probability or exponent)")
        require(self, ("learning_starts",), lambda v: v >= 0, ">= 0")
        require(self, ("max_grad_norm",), lambda v: v is None or v > 0, "positive (or none)")
        require(self, ("buffer_size",), lambda v: v <= 10**9, "at most 1e9 transitions")
        require_hidden(self)
        if self.batch_size > self.buffer_size:
            raise UserError(f"batch_size {self.batch_size} is larger than buffer_size {self.buffer_size}")
        if self.lr.start <= 0:
            raise UserError(f"lr must start above 0, got {self.lr.to_data()}")


def shares_frames(cfg: DQNConfig, obs_space, frame_stack: int) -> bool:
    """Stacked uint8 frames (the env card's frame_stack) go to the frame-sharing replay memory."""
    return cfg.share_frames and frame_stack > 1 and obs_space.dtype == np.uint8 and len(obs_space.shape) == 3


def replay_bytes(cfg: DQNConfig, obs_space, frame_stack: int = 1) -> int:
    """Memory the replay buffer allocates, computed before anything is allocated."""
    if shares_frames(cfg, obs_space, frame_stack):
        return frame_replay_bytes(cfg.buffer_size, obs_space.shape, cfg.num_envs, cfg.n_step, cfg.prioritized)
    return naive_replay_bytes(cfg.buffer_size, obs_space.shape, obs_space.dtype)


def check_spaces(obs_space, action_space, cfg: DQNConfig | None = None, env_card=None) -> None:
    require_discrete(action_space, "dqn")
    require_box_obs(obs_space, "dqn")
    if cfg is not None:
        if cfg.net == "cnn" and len(obs_space.shape) != 3:
            raise UserError(f"net=cnn needs image observations (3-D), this env has shape {obs_space.shape}; use net=mlp")
        check_memory(replay_bytes(cfg, obs_space, env_card.frame_stack if env_card else 1),
                     f"a replay buffer of {cfg.buffer_size:,} transitions of {tuple(obs_space.shape)} {obs_space.dtype}",
                     "lower buffer_size")
        if cfg.net == "mlp" or (cfg.net == "auto" and len(obs_space.shape) != 3):
            check_memory(net_bytes(obs_space.shape, cfg.hidden, int(action_space.n), copies=5),
                         f"a {list(cfg.hidden)} network (weights, target, gradients, Adam)", "use smaller hidden sizes")


def build_q_network(cfg: DQNConfig, obs_space, n_actions: int) -> nn.Module:
    trunk = make_trunk(obs_space.shape, cfg.net, cfg.hidden, cfg.activation, uint8=obs_space.dtype == np.uint8)
    head = (DuelingQHead if cfg.dueling else QHead)(trunk.out_dim, n_actions)
    return nn.Sequential(trunk, head)


def greedy_policy(q: nn.Module, device: torch.device, cfg: DQNConfig | None = None, sample_seed: int | None = None):
    """obs batch (numpy) -> argmax_a Q(obs, a): evaluation's policy (ε = 0). With a sample_seed, the stochastic
    evaluation (eval_deterministic: false): ε-greedy at the schedule's final ε, drawn from that seed."""
    rng = np.random.default_rng(sample_seed) if sample_seed is not None else None
    epsilon = cfg.epsilon(1.0) if rng is not None else 0.0

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        values = q(torch.as_tensor(obs, device=device))
        actions = values.argmax(dim=1).cpu().numpy()
        if rng is None:
            return actions
        explore = rng.random(len(actions)) < epsilon
        return np.where(explore, rng.integers(values.shape[1], size=len(actions)), actions)

    return act


def load_policy(cfg: DQNConfig, envs_or_spaces, state: dict, device: torch.device, sample_seed: int | None = None):
    obs_space, action_space = envs_or_spaces
    q = build_q_network(cfg, obs_space, int(action_space.n)).to(device)
    q.load_state_dict(state["q"])
    q.eval()
    return greedy_policy(q, device, cfg, sample_seed)


def td_loss(q, batch, target_next, cfg: DQNConfig, weights=None):
    """TD loss on one minibatch per member: every tensor has a leading member axis M (1 for a single run);
    returns the (M,) losses, the TD errors and Q(s, a). `target_next` (M, B, A) is Q_target(next_obs) from
    the frozen target net.

    y = r + discount * Q_target(s', a*), where a* is chosen by the target net itself, or by the
    online net with double Q (van Hasselt et al.: selection and evaluation decoupled).
    """
    with torch.no_grad():
        chooser = q(batch["next_obs"]) if cfg.double else target_next
        next_v = target_next.gather(-1, chooser.argmax(dim=-1, keepdim=True)).squeeze(-1)
        y = batch["rewards"] + batch["discounts"] * next_v  # discount is 0 after a termination
    q_sa = q(batch["obs"]).gather(-1, batch["actions"].long().unsqueeze(-1)).squeeze(-1)  # (M, B, A) -> (M, B)
    per_sample = F.smooth_l1_loss(q_sa, y, reduction="none") if cfg.loss == "huber" else (q_sa - y).pow(2)
    loss = per_sample.mean(-1) if weights is None else (weights * per_sample).mean(-1)
    return loss, (q_sa - y).detach(), q_sa.detach()


def batchable(cfg: DQNConfig) -> bool:
    """Every DQN config trains its seeds as one population."""
    return True


def train(cfg: DQNConfig, run: Run) -> dict:
    """One run: a population of one."""
    with Population([run]) as population:
        return train_population(cfg, population)[0]


def train_population(cfg: DQNConfig, population: Population) -> list[dict]:
    runs, M, E = population.runs, population.size, cfg.num_envs
    device = population.device
    envs = make_vector_env(runs[0].env_card, M * E)  # member m steps sub-envs m*E .. m*E+E-1
    n_actions = require_discrete(envs.single_action_space, "dqn")
    obs_space = envs.single_observation_space
    require_box_obs(obs_space, "dqn")
    rows = [slice(m * E, (m + 1) * E) for m in range(M)]

    # one network per member from its own seed, stacked into one: weights (M, ...), inputs (M, B, ...)
    q = stack_members([seeded(run.seeds.torch_seed(WEIGHTS), build_q_network, cfg, obs_space, n_actions) for run in runs]).to(device)
    target_q = copy.deepcopy(q)
    optimizer = make_adam(q.parameters(), cfg.lr(0.0), cfg.adam_eps)
    # each member its own replay memory and n-step windows, filled from its own envs
    extra = {"alpha": cfg.per_alpha, "eps": cfg.per_eps} if cfg.prioritized else {}
    if shares_frames(cfg, obs_space, runs[0].env_card.frame_stack):  # Atari stacks: each frame stored once
        buffers = [FrameReplayBuffer(cfg.buffer_size, obs_space.shape, E, cfg.n_step, cfg.prioritized, device=device,
                                     **extra) for _ in runs]
    else:
        buffers = [(PrioritizedReplayBuffer if cfg.prioritized else ReplayBuffer)(
            cfg.buffer_size, obs_space.shape, obs_space.dtype, device=device, **extra) for _ in runs]
    nsteps = [NStepAccumulator(E, cfg.n_step, cfg.gamma) for _ in runs]
    rngs = [run.seeds.numpy(AGENT) for run in runs]  # each member's exploration and replay sampling
    guard = MemberDivergenceGuard(M)
    alive = torch.ones(M, device=device)
    singles: dict[int, nn.Module] = {}  # member -> its network alone, for its evaluations

    # synced_at: the update count at the last hard copy (none is due before the first update); a resumed run
    # does not know it, so its first crossing copies (an identical copy where nothing was learned since)
    step, updates, synced_at = 0, 0, 0
    learn_after = cfg.learning_starts
    if runs[0].restored:
        synced_at = -1
        states = [run.restored["state"] for run in runs]
        for m, s in enumerate(states):
            restore_weights(Member(q, m), s["q"], runs[m])
            load_member_state(target_q, m, s["target_q"])
            rngs[m].bit_generator.state = s["rng"]
            if "buffer" in s:
                buffers[m].load_state_dict(s["buffer"])
                nsteps[m].load_state_dict(s["nstep"])
        load_member_optimizer_states(optimizer, [s["optimizer"] for s in states])
        if "buffer" not in states[0]:  # checkpoints without their replay memory (save_buffer: false): refill first
            learn_after = runs[0].restored["step"] + max(cfg.learning_starts, cfg.batch_size)
        step, updates = runs[0].restored["step"], states[0]["updates"]
    obs = population.reset_envs(envs, E)
    restored = runs[0].restored and "buffer" in runs[0].restored["state"] and not population.envs_restarted
    # what each member's buffer stores for the current observations (themselves, or frame ids)
    keys = [run.restored["state"]["keys"] if restored and "keys" in run.restored["state"] else buffers[m].begin(obs[rows[m]])
            for m, run in enumerate(runs)]
    if population.envs_restarted:  # fresh episodes: open n-step windows must not run into them
        for nstep in nsteps:
            nstep.clear()

    def snapshot(m: int) -> dict:
        state = {"q": member_state_dict(q, m), "target_q": member_state_dict(target_q, m),
                 "optimizer": member_optimizer_state(optimizer, m), "rng": rngs[m].bit_generator.state,
                 "updates": updates, **population.env_snapshot(envs, obs, m, E)}
        if cfg.save_buffer:
            state.update(buffer=buffers[m].state_dict(), nstep=nsteps[m].state_dict(), keys=torch.as_tensor(keys[m]))
        return state

    def act_of(m: int):
        """Member m's evaluation policy (greedy, or ε-greedy with eval_deterministic: false): its weights in a
        network built alone."""
        if m not in singles:
            singles[m] = build_q_network(cfg, obs_space, n_actions).to(device).eval()
        singles[m].load_state_dict(member_state_dict(q, m))
        return greedy_policy(singles[m], device, cfg, eval_sample_seed(cfg, runs[m]))

    def stacked(batches: list[dict]) -> dict:
        return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}

    loss_sum, q_sum, n_losses = torch.zeros(M), torch.zeros(M), 0
    for run in runs:
        run.start_clock()
    next_log = (step // cfg.log_every + 1) * cfg.log_every
    while step < cfg.total_steps:
        progress = step / cfg.total_steps
        # 1. act ε-greedily, each member with its own generator (its draws happen every step, so the stream does
        #    not depend on ε); before learning_starts the buffer is filled by the uniform random policy, as in SB3
        epsilon = cfg.epsilon(progress) if step >= cfg.learning_starts else 1.0
        draws = np.stack([rng.random((2, E)) for rng in rngs])  # (M, 2, E): explore?, which random action
        explore = draws[:, 0] < epsilon
        actions = np.minimum((draws[:, 1] * n_actions).astype(np.int64), n_actions - 1)
        if not explore.all():
            with torch.no_grad():
                greedy = q(torch.as_tensor(obs.reshape(M, E, *obs.shape[1:]), device=device)).argmax(-1).cpu().numpy()
            actions = np.where(explore, actions, greedy)

        # 2. step the envs; the transition's next state is the true final obs at an episode end
        next_obs, rewards, terminated, truncated, info = envs.step(actions.reshape(-1))
        step += E
        population.log_episodes(step, episode_stats(info), E)

        # 3. store, each member in its own memory: bootstrap on truncation (time limit), not on termination
        final_obs, ended = true_next_obs(next_obs, info), terminated | truncated
        for m, r in enumerate(rows):
            stored_next, next_keys = buffers[m].advance(keys[m], final_obs[r], next_obs[r], ended[r])
            ready = nsteps[m].push(keys[m], actions[m], rewards[r], stored_next, terminated[r], truncated[r])
            if ready is not None:
                buffers[m].add(*ready)
            keys[m] = next_keys
        obs = next_obs

        # 4. learn: every member's G minibatches from its own memory, one batched gradient step for all.
        # train_freq counts env steps: a vector step of E env steps may cross several multiples of it.
        phases = step // cfg.train_freq - (step - E) // cfg.train_freq
        if step >= learn_after and phases:
            G = phases * cfg.gradient_steps
            set_lr(optimizer, cfg.lr(progress))
            if not cfg.prioritized:
                # The target net is frozen during an update phase, so all G minibatches are gathered
                # at once and their target values come from one batched forward pass.
                idx = [buffer.sample_indices((G, cfg.batch_size), rng) for buffer, rng in zip(buffers, rngs)]
                batches = stacked([buffer.gather(i) for buffer, i in zip(buffers, idx)])  # each field (M, G, B, ...)
                with torch.no_grad():  # (M, G, B, *obs) -> (M, G*B, *obs) -> (M, G, B, A)
                    all_target_next = target_q(batches["next_obs"].flatten(1, 2)).view(
                        M, G, cfg.batch_size, n_actions)
            for g in range(G):
                if cfg.prioritized:  # priorities change after every step, so sample one batch at a time
                    sampled = [buffer.sample_prioritized(cfg.batch_size, cfg.per_beta(progress), rng)
                               for buffer, rng in zip(buffers, rngs)]
                    batch = stacked([buffer.gather(i) for buffer, (i, _) in zip(buffers, sampled)])
                    weights = torch.as_tensor(np.stack([w for _, w in sampled]), dtype=torch.float32, device=device)
                    with torch.no_grad():
                        target_next = target_q(batch["next_obs"])
                    loss, td, q_sa = td_loss(q, batch, target_next, cfg, weights)
                else:
                    batch = {k: v[:, g] for k, v in batches.items()}
                    loss, td, q_sa = td_loss(q, batch, all_target_next[:, g], cfg)
                member_gradient_step(optimizer, loss, alive, cfg.max_grad_norm, guard)
                if cfg.prioritized:
                    td = td.cpu().numpy()
                    for m, (buffer, (i, _)) in enumerate(zip(buffers, sampled)):
                        buffer.update_priorities(i, td[m])
                loss_sum += loss.detach().cpu()
                q_sum += q_sa.mean(-1).cpu()
                n_losses += 1
            updates += G
            diverged = guard.diverged()  # before a bad update can reach a checkpoint
            for m in diverged:
                retire_member(optimizer, m)
                alive[m] = 0.0
            try:
                population.diverged(diverged, "dqn", step, f"a NaN/Inf loss or gradient in update {updates:,}")
            except Diverged:
                envs.close()
                raise

        # 5. target network (a hard copy of unchanged weights is skipped: it would change nothing)
        if step // cfg.target_update_interval != (step - E) // cfg.target_update_interval:
            if cfg.tau < 1.0 or synced_at != updates:
                update_target(q, target_q, cfg.tau)
                synced_at = updates

        # 6. log, evaluate, checkpoint
        if step >= next_log:
            next_log += cfg.log_every
            for m, run in enumerate(runs):
                if not population.alive[m]:
                    continue
                scalars = {"charts/epsilon": epsilon, "charts/learning_rate": optimizer.param_groups[0]["lr"],
                           "charts/SPS": step / max(run.wall(), 1e-9), "charts/updates": updates}
                if n_losses:
                    scalars.update({"losses/td_loss": (loss_sum[m] / n_losses).item(),
                                    "losses/q_values": (q_sum[m] / n_losses).item()})
                run.log_scalars(step, scalars)
            loss_sum, q_sum, n_losses = torch.zeros(M), torch.zeros(M), 0
        if population.after_iteration(step, act_of, snapshot):
            break

    envs.close()
    return population.finish(step, act_of, snapshot)
