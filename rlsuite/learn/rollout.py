"""On-policy storage: the rollout buffer A2C and PPO fill, and REINFORCE's episode carry."""

from __future__ import annotations

import numpy as np
import torch

from rlsuite.core.errors import UserError
from rlsuite.learn.returns import monte_carlo_returns


class RolloutBuffer:
    """One on-policy rollout over N vector envs, time-major arrays (T, N, ...).

    `truncated` marks time-limit ends (not terminations) and `truncated_values` holds V(true final
    obs) there, so return/advantage code can bootstrap through a time limit and not through a death.
    """

    def __init__(self, n_steps: int, num_envs: int, obs_shape, action_shape, action_dtype, obs_dtype=np.float32):
        T, N = n_steps, num_envs
        self.obs = np.zeros((T, N, *obs_shape), obs_dtype)  # uint8 frames stay uint8 (4x less memory)
        self.actions = np.zeros((T, N, *action_shape), action_dtype)
        self.logprobs = np.zeros((T, N), np.float32)
        self.values = np.zeros((T, N), np.float32)
        self.rewards = np.zeros((T, N), np.float32)
        self.terminated = np.zeros((T, N), bool)
        self.truncated = np.zeros((T, N), bool)
        self.truncated_values = np.zeros((T, N), np.float32)

    def flat(self, name: str) -> np.ndarray:
        value = getattr(self, name)
        return value.reshape(-1, *value.shape[2:])  # (T, N, ...) -> (T*N, ...)


class EpisodeCarry:
    """REINFORCE's storage: a step waits, per env, until its episode ends — in this rollout or several
    rollouts later — and then leaves exactly once, with its full Monte-Carlo return.

    A fixed-length rollout cuts most episodes in two; masking the unfinished tail out (and never
    using it) would throw away most of the data and keep only each episode's last steps, so the tail
    is carried into the next rollout instead. Its samples then come from a policy one or a few updates
    old, the usual price of batching whole episodes over a vector env.
    """

    MAX_PENDING = 1_000_000  # steps one env may hold without its episode ending

    def __init__(self, num_envs: int, obs_shape, action_shape, action_dtype):
        self.num_envs = num_envs
        empty = lambda shape, dtype: np.zeros((0, *shape), dtype)  # noqa: E731
        self.obs = [empty(obs_shape, np.float32) for _ in range(num_envs)]
        self.actions = [empty(action_shape, action_dtype) for _ in range(num_envs)]
        self.rewards = [empty((), np.float32) for _ in range(num_envs)]

    def add(self, obs, actions, rewards, terminated, truncated, truncated_values, gamma: float) -> dict:
        """Take a (T, N, ...) rollout; return {obs, actions, returns} of every step whose episode has
        now ended (carried steps first, in time order per env), keeping the rest for the next call.
        At a termination the return ends there; at a time limit it bootstraps from V(true final obs)
        (`truncated_values`, zeros without a critic)."""
        out = {"obs": [], "actions": [], "returns": []}
        for i in range(self.num_envs):
            o = np.concatenate([self.obs[i], obs[:, i]])
            a = np.concatenate([self.actions[i], actions[:, i]])
            r = np.concatenate([self.rewards[i], rewards[:, i]])
            carried = len(self.rewards[i])
            term = np.concatenate([np.zeros(carried, bool), terminated[:, i]])
            trunc = np.concatenate([np.zeros(carried, bool), truncated[:, i]])
            tv = np.concatenate([np.zeros(carried, np.float32), truncated_values[:, i]])
            ends = np.flatnonzero(term | trunc)
            cut = ends[-1] + 1 if len(ends) else 0  # steps [0, cut) belong to finished episodes
            if cut:
                # (L,) -> (L, 1): one env's sequence in the (T, N) layout the returns code takes
                g = monte_carlo_returns(r[:cut, None], term[:cut, None], trunc[:cut, None], np.zeros(1), gamma,
                                        tv[:cut, None])[:, 0]
                out["obs"].append(o[:cut])
                out["actions"].append(a[:cut])
                out["returns"].append(g.astype(np.float32))
            self.obs[i], self.actions[i], self.rewards[i] = o[cut:], a[cut:], r[cut:]
            if len(self.rewards[i]) > self.MAX_PENDING:
                raise UserError(f"REINFORCE needs episodes that end: one has run {len(self.rewards[i]):,} steps; "
                                "add a TimeLimit wrapper (or max_episode_steps) in the env card")
        if not out["returns"]:
            return {}
        return {k: np.concatenate(v) for k, v in out.items()}

    def pending(self) -> int:
        return sum(len(r) for r in self.rewards)

    def clear(self) -> None:
        """Forget the unfinished episodes (their envs were restarted, e.g. on a resume without env state)."""
        for i in range(self.num_envs):
            self.obs[i], self.actions[i], self.rewards[i] = self.obs[i][:0], self.actions[i][:0], self.rewards[i][:0]

    def state_dict(self) -> dict:
        return {name: [torch.from_numpy(x.copy()) for x in getattr(self, name)] for name in ("obs", "actions", "rewards")}

    def load_state_dict(self, state: dict) -> None:
        for name in ("obs", "actions", "rewards"):
            setattr(self, name, [t.numpy().copy() for t in state[name]])
