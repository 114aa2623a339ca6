"""Replay storage for off-policy agents: a replay buffer, its prioritized variant (sum-tree) and the
n-step accumulator that feeds them.

Replay transitions are stored as (obs, action, reward, next_obs, discount) where
`discount` = gamma^k for a k-step transition that may bootstrap and 0 after a termination, so the
learner's target is simply reward + discount * V(next_obs) whatever n-step or time-limit case made it.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from rlsuite.learn.returns import discounted_sum


def naive_replay_bytes(capacity: int, obs_shape, obs_dtype=np.uint8) -> int:
    """Bytes a ReplayBuffer allocates: obs and next_obs whole, action (int64), reward, discount (float32)."""
    return int(capacity) * (2 * int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize + 8 + 4 + 4)


def _to_numpy(state: dict) -> dict:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


class ReplayBuffer:
    """Uniform replay over a circular array store (numpy on the host; batches move to `device`)."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "discounts")

    def __init__(self, capacity: int, obs_shape, obs_dtype, action_shape=(), action_dtype=np.int64,
                 device: str | torch.device = "cpu"):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros((capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, discounts) -> np.ndarray:
        """Add a batch of k transitions (leading axis k); returns the slots they went to."""
        k = len(rewards)
        slots = (self.pos + np.arange(k)) % self.capacity
        self.obs[slots] = obs
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.next_obs[slots] = next_obs
        self.discounts[slots] = discounts
        self.pos = int((self.pos + k) % self.capacity)
        self.size = min(self.size + k, self.capacity)
        return slots

    # What the agent stores for an observation: the observation itself (frames.FrameReplayBuffer
    # stores frame ids instead and has the same two calls).
    def begin(self, obs: np.ndarray) -> np.ndarray:
        return obs

    def advance(self, keys, final_obs: np.ndarray, next_obs: np.ndarray, ended: np.ndarray):
        """(what a transition's next state is stored as, what the envs' current observations are)."""
        return final_obs, next_obs

    def gather(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Transitions at `idx` (any shape, e.g. (G, B) for G minibatches) as tensors on the device."""
        return {name: torch.as_tensor(getattr(self, name)[idx], device=self.device) for name in self.FIELDS}

    def sample_indices(self, shape, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.size, size=shape)

    # Checkpointing: only the filled part is saved.
    def state_dict(self) -> dict:
        n = self.size
        state = {name: torch.from_numpy(getattr(self, name)[:n].copy()) for name in self.FIELDS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {state['capacity']} in checkpoint != {self.capacity}")
        n = state["size"]
        for name, value in _to_numpy({k: state[k] for k in self.FIELDS}).items():
            getattr(self, name)[:n] = value
        self.pos, self.size = state["pos"], n


class SumTree:
    """Binary sum-tree over `capacity` leaves (rounded up to a power of two), vectorised in numpy.

    Node 1 is the root, node i has children 2i and 2i+1, leaf j is node `leaves + j`. Updates and
    prefix-sum searches touch log2(capacity) levels for a whole batch at once.
    """

    def __init__(self, capacity: int):
        self.leaves = 1
        while self.leaves < capacity:
            self.leaves *= 2
        self.depth = self.leaves.bit_length() - 1
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def priorities(self, idx: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(idx) + self.leaves]

    def update(self, idx, priorities) -> None:
        nodes = np.asarray(idx, dtype=np.int64) + self.leaves
        self.tree[nodes] = priorities  # for a repeated index the last write wins
        for _ in range(self.depth):
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, values) -> np.ndarray:
        """Leaf index j for each value v in [0, total): the first j with prefix_sum(j) > v."""
        values = np.asarray(values, dtype=np.float64).copy()
        nodes = np.ones(len(values), dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            # Never step into an empty right subtree: float round-off could otherwise pick a leaf
            # of priority 0 (an unfilled slot).
            right = (values >= self.tree[left]) & (self.tree[left + 1] > 0)
            values -= np.where(right, self.tree[left], 0.0)
            nodes = left + right
        return nodes - self.leaves


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016): P(i) ∝ p_i^alpha, importance weights
    (N P(i))^-beta normalised by the batch maximum; new transitions get the largest priority seen."""

    def __init__(self, capacity, obs_shape, obs_dtype, alpha: float = 0.6, eps: float = 1e-6, **kwargs):
        super().__init__(capacity, obs_shape, obs_dtype, **kwargs)
        self.tree = SumTree(capacity)
        self.alpha = alpha
        self.eps = eps
        self.max_priority = 1.0

    def add(self, *args) -> np.ndarray:
        slots = super().add(*args)
        self.tree.update(slots, np.full(len(slots), self.max_priority**self.alpha))
        return slots

    def sample_prioritized(self, batch_size: int, beta: float, rng: np.random.Generator):
        """Stratified sampling: one draw from each of `batch_size` equal slices of the total mass."""
        edges = (np.arange(batch_size) + rng.random(batch_size)) * (self.tree.total / batch_size)
        idx = self.tree.find(edges)
        probs = self.tree.priorities(idx) / self.tree.total
        weights = (self.size * probs) ** (-beta)
        return idx, weights / weights.max()

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(td_errors) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(idx, priorities**self.alpha)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(tree=torch.from_numpy(self.tree.tree.copy()), max_priority=self.max_priority)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.tree[:] = state["tree"].numpy()
        self.max_priority = state["max_priority"]


class NStepAccumulator:
    """Turns one-step vector-env transitions into n-step ones, per env, never across episodes.

    A window is emitted when it holds n rewards (discount gamma^n), and every pending window is
    emitted when its episode ends: with discount 0 at a termination, gamma^k at a truncation
    (bootstrap from the true final observation). Matches `returns.n_step_targets`.
    """

    def __init__(self, num_envs: int, n: int, gamma: float):
        self.n, self.gamma = n, gamma
        self.pending = [deque() for _ in range(num_envs)]

    def push(self, obs, actions, rewards, next_obs, terminated, truncated):
        """Returns the ready transitions as arrays (obs, actions, rewards, next_obs, discounts)."""
        if self.n == 1:  # the common case, vectorised: every step is its own window
            return obs, actions, rewards, next_obs, self.gamma * (1.0 - terminated.astype(np.float32))
        out = []
        for i, window in enumerate(self.pending):
            window.append((obs[i], actions[i], float(rewards[i])))
            if terminated[i] or truncated[i]:
                while window:
                    rs = [w[2] for w in window]
                    discount = 0.0 if terminated[i] else self.gamma ** len(rs)
                    out.append((window[0][0], window[0][1], discounted_sum(rs, self.gamma), next_obs[i], discount))
                    window.popleft()
            elif len(window) == self.n:
                rs = [w[2] for w in window]
                out.append((window[0][0], window[0][1], discounted_sum(rs, self.gamma), next_obs[i], self.gamma**self.n))
                window.popleft()
        if not out:
            return None
        o, a, r, no, d = zip(*out)
        return np.stack(o), np.stack(a), np.asarray(r, np.float32), np.stack(no), np.asarray(d, np.float32)

    def clear(self) -> None:
        """Forget open windows (their envs were restarted, e.g. on a resume without env state)."""
        for window in self.pending:
            window.clear()

    def state_dict(self) -> dict:
        return {"pending": [[(torch.from_numpy(np.asarray(o).copy()), torch.as_tensor(a), r) for o, a, r in w]
                            for w in self.pending]}

    def load_state_dict(self, state: dict) -> None:
        self.pending = [deque((o.numpy(), a.numpy(), r) for o, a, r in w) for w in state["pending"]]
