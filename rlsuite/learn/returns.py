"""Return targets as pure functions over arrays, each tested against hand-computed values.

Conventions: arrays are time-major, (T,) for one env or (T, N) for N envs. `terminated[t]` means
the episode ended in a true terminal state at step t (no bootstrap: the future is worth 0);
`truncated[t]` means it was cut by a time limit (bootstrap from the value of the final
observation, because the state itself is not terminal).
"""

from __future__ import annotations

import numpy as np


def discounted_sum(rewards, gamma: float) -> float:
    """r_0 + g r_1 + g^2 r_2 + ..."""
    total = 0.0
    for r in reversed(list(rewards)):
        total = float(r) + gamma * total
    return total


def n_step_targets(rewards, terminated, truncated, gamma: float, n: int):
    """n-step return pieces for every step t of one env's trajectory.

    Returns (returns, discounts, bootstrap_index), each (T,):
      target_t = returns[t] + discounts[t] * max_a Q(obs_next[bootstrap_index[t]], a)
    where obs_next[k] is the observation after step k (the true final one at an episode end).
    The n-step window stops at the end of an episode: at a termination the discount is 0, at a
    truncation it is gamma^k with k the number of rewards summed. Steps at the end of the array
    whose window is incomplete and whose episode has not ended bootstrap from the last step.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool)
    T = len(rewards)
    returns = np.zeros(T)
    discounts = np.zeros(T)
    bootstrap = np.zeros(T, dtype=np.int64)
    for t in range(T):
        total, k = 0.0, 0
        while True:
            total += gamma**k * rewards[t + k]
            k += 1
            last = t + k - 1
            if terminated[last]:
                discounts[t] = 0.0
                break
            if truncated[last] or k == n or last == T - 1:
                discounts[t] = gamma**k
                break
        returns[t] = total
        bootstrap[t] = last
    return returns, discounts, bootstrap


def monte_carlo_returns(rewards, terminated, truncated, last_values, gamma: float,
                        truncated_values=None):
    """Discounted reward-to-go G_t over a (T, N) rollout.

    At a termination the return restarts from 0; at a truncation it restarts from the value of the
    true final observation (`truncated_values[t, i]`, 0 if not given); past the rollout's end it
    bootstraps from `last_values` (N,) (pass zeros for pure Monte-Carlo over complete episodes).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    T = rewards.shape[0]
    terminated = np.asarray(terminated, dtype=bool).reshape(rewards.shape)
    truncated = np.asarray(truncated, dtype=bool).reshape(rewards.shape)
    tv = np.zeros_like(rewards) if truncated_values is None else np.asarray(truncated_values, np.float64)
    out = np.zeros_like(rewards)
    running = np.asarray(last_values, dtype=np.float64).copy()
    for t in reversed(range(T)):
        running = np.where(terminated[t], 0.0, np.where(truncated[t], tv[t], running))
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def gae(rewards, values, terminated, truncated, last_values, gamma: float, lam: float,
        truncated_values=None):
    """Generalised advantage estimation (Schulman et al. 2016) over a (T, N) rollout.

    `values[t]` is V(obs_t); `last_values` is V of the observation after the rollout. At a
    termination the next value is 0; at a truncation it is V(true final obs)
    (`truncated_values[t]`); in both cases the advantage recursion stops at the episode end.
    Returns (advantages, value_targets) with value_targets = advantages + values.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(rewards.shape)
    terminated = np.asarray(terminated, dtype=bool).reshape(rewards.shape)
    truncated = np.asarray(truncated, dtype=bool).reshape(rewards.shape)
    tv = np.zeros_like(rewards) if truncated_values is None else np.asarray(truncated_values, np.float64)
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    next_value = np.asarray(last_values, dtype=np.float64)
    for t in reversed(range(T)):
        ended = terminated[t] | truncated[t]
        bootstrap = np.where(terminated[t], 0.0, np.where(truncated[t], tv[t], next_value))
        delta = rewards[t] + gamma * bootstrap - values[t]
        running = delta + gamma * lam * np.where(ended, 0.0, running)
        adv[t] = running
        next_value = values[t]
    return adv, adv + values
