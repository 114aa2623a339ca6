"""Where a run's time goes (docs/protocol.md, Speed): the training env alone, the env with the policy acting,
and the full training rate; the differences are acting and updating."""

from __future__ import annotations

import time

from rlsuite.config.schema import EnvCard
from rlsuite.envs.make import make_vector_env


def env_rate(card: EnvCard, num_envs: int, steps: int, act=None) -> float:
    """Env steps/s of the card's training vector env with random actions, or with `act` choosing them."""
    envs = make_vector_env(card, num_envs)
    obs, _ = envs.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(max(steps // num_envs, 1)):
        obs, *_ = envs.step(envs.action_space.sample() if act is None else act(obs))
    rate = max(steps // num_envs, 1) * num_envs / (time.perf_counter() - t0)
    envs.close()
    return rate


def time_split(card: EnvCard, num_envs: int, full_rate: float, act, steps: int = 4000) -> dict:
    """Shares of a training step: env stepping, acting (the policy's forward pass), the rest (updates,
    storage, bookkeeping), from the env alone, env + acting, and the full run's steps/s."""
    alone, acting = env_rate(card, num_envs, steps), env_rate(card, num_envs, steps, act)
    t_env, t_act, t_full = 1 / alone, max(1 / acting - 1 / alone, 0.0), 1 / full_rate
    return {"env_alone": alone, "env_acting": acting, "full": full_rate, "env": t_env / t_full,
            "acting": t_act / t_full, "updates": max(t_full - t_env - t_act, 0.0) / t_full}


def split_row(label: str, split: dict) -> str:
    return (f"| {label} | {split['env_alone']:,.0f} | {split['env_acting']:,.0f} | {split['full']:,.0f} | "
            f"{split['env']:.0%} | {split['acting']:.0%} | {split['updates']:.0%} |")


SPLIT_HEAD = ["| run | env alone | env + acting | full training | env | acting | updates and the rest |",
              "|---|---|---|---|---|---|---|"]


def best_cpu_times(sides: dict, reps: int) -> dict[str, float]:
    """Process seconds of one call of each side's function, best of `reps` passes that take the sides in turn
    (so other load on the machine slows every side alike), after one pass to warm up (allocations, an
    optimiser's first step)."""
    best = {side: float("inf") for side in sides}
    for rep in range(reps + 1):
        for side, fn in sides.items():
            t0 = time.process_time()
            fn()
            if rep:
                best[side] = min(best[side], time.process_time() - t0)
    return best
