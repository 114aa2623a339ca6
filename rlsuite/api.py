"""The Python API: train, resume, load and evaluate runs. The CLI is one client of the same library.

    import rlsuite
    result = rlsuite.train("ppo", "CartPole-v1", seed=0, steps=50_000)   # -> summary dict, with "run_dir"
    policy = rlsuite.load(result["run_dir"])       # any RL run directory, rlsuite's or an SB3 baseline's
    action = policy.predict(obs)                   # one observation, or a batch: deterministic actions
    rlsuite.evaluate(result["run_dir"], episodes=20)
    rlsuite.resume(run_dir, steps=100_000)         # continue a stopped run, or extend a finished one
    rlsuite.trust_imports("mypackage")             # let run directories import mypackage (their 'module:' env ids)
"""

from __future__ import annotations

from rlsuite import runs
from rlsuite.config.cards import trust_imports  # noqa: F401 - part of the API


def train(agent: str, env_id: str, seed: int = 0, steps: int | None = None, overrides: dict | None = None,
          out=".", device: str = "auto", progress: bool = False, seeds: list[int] | None = None):
    """Train AGENT on ENV_ID with its card (+ `overrides`, as --set); returns the summary, run_dir included.
    With `seeds`, one run per seed trained together as one population; returns their summaries in order."""
    if seeds is not None:
        return runs.train_seeds(agent, env_id, list(seeds), steps=steps, overrides=overrides, out=out, device=device,
                                progress=progress)
    return runs.train(agent, env_id, seed=seed, steps=steps, overrides=overrides, out=out, device=device,
                      progress=progress)


def resume(run_dir, steps: int | None = None, device: str | None = None, progress: bool = False) -> dict:
    """Continue a stopped run from its last checkpoint; with `steps`, train a finished one on to that total."""
    return runs.resume(run_dir, progress=progress, device=device, steps=steps)


def load(run_dir, device: str = "auto") -> runs.Policy:
    """The deterministic policy of a run directory: `policy(obs_batch)` or `policy.predict(obs)`."""
    return runs.load_policy(run_dir, device)


def evaluate(run_dir, episodes: int | None = None, seed: int | None = None, device: str = "auto") -> dict:
    """Re-evaluate a run directory's saved agent under the evaluation protocol."""
    return runs.evaluate_run(run_dir, episodes=episodes, seed=seed, device=device)
