"""Running statistics for observation normalisation and reward scaling (on-policy agents).

Both keep their state as plain numbers/arrays so it goes into the checkpoint: evaluation and
resume then see exactly the statistics training used. In a population (`members=M`) each member keeps
its own statistics, updated from its own envs only: inputs are (M, E, ...) and statistics (M, ...).
"""

from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape=(), eps: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = eps

    def update(self, batch: np.ndarray, axis: int = 0) -> None:
        b_mean, b_var, b_count = batch.mean(axis=axis), batch.var(axis=axis), batch.shape[axis]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64)
        self.var = np.asarray(state["var"], np.float64)
        self.count = state["count"]

    def member_state(self, member: int) -> dict:
        """Member `member`'s statistics, as a single run's RunningMeanStd saves them."""
        return {"mean": self.mean[member].tolist(), "var": self.var[member].tolist(), "count": float(self.count)}

    def load_member_states(self, states: list[dict]) -> None:
        self.mean = np.stack([np.asarray(s["mean"], np.float64) for s in states])
        self.var = np.stack([np.asarray(s["var"], np.float64) for s in states])
        self.count = states[0]["count"]  # every member has seen as many samples


class ObsNormalizer:
    """(obs - mean) / std, clipped; statistics update only while training."""

    def __init__(self, shape, enabled: bool, clip: float = 10.0, members: int | None = None):
        self.enabled, self.clip, self.members = enabled, clip, members
        self.rms = RunningMeanStd(shape if members is None else (members, *shape))

    def __call__(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if not self.enabled:
            return obs.astype(np.float32, copy=False)
        axis = 0 if self.members is None else 1  # a population's (M, E, ...) batch: each member's own envs
        if update:
            self.rms.update(obs, axis)
        mean, var = (self.rms.mean, self.rms.var) if axis == 0 else (self.rms.mean[:, None], self.rms.var[:, None])
        return np.clip((obs - mean) / np.sqrt(var + 1e-8), -self.clip, self.clip).astype(np.float32)


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize does)."""

    def __init__(self, num_envs: int, gamma: float, enabled: bool, clip: float = 10.0, members: int | None = None):
        self.enabled, self.gamma, self.clip, self.members = enabled, gamma, clip, members
        self.rms = RunningMeanStd(() if members is None else (members,))
        self.returns = np.zeros(num_envs if members is None else (members, num_envs))

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        """rewards, done: (E,), or (M, E) in a population."""
        if not self.enabled:
            return rewards
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns, axis=0 if self.members is None else 1)
        self.returns[done] = 0.0
        var = self.rms.var if self.members is None else self.rms.var[:, None]
        return np.clip(rewards / np.sqrt(var + 1e-8), -self.clip, self.clip)

    def member_state(self, member: int) -> dict:
        return {"rms": self.rms.member_state(member), "returns": self.returns[member].tolist()}

    def load_member_states(self, states: list[dict]) -> None:
        self.rms.load_member_states([s["rms"] for s in states])
        self.returns = np.stack([np.asarray(s["returns"]) for s in states])

    def state_dict(self) -> dict:
        return {"rms": self.rms.state_dict(), "returns": self.returns.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.rms.load_state_dict(state["rms"])
        self.returns = np.asarray(state["returns"])
