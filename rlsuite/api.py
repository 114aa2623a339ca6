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

import functools
import os
import re

from rlsuite import runs
from rlsuite.config.cards import trust_imports  # noqa: F401 - part of the API
from rlsuite.core.errors import UserError

# The library words its errors for the command line; a Python caller gets the argument names it used.
ARGUMENTS = {"--set": "overrides", "--env-kwargs": "env_kwargs", "--steps": "steps", "--seeds": "seeds",
             "--seed": "seed", "--episodes": "episodes", "--device": "device", "--out": "out", "--resume": "resume"}


def _require(value, types, name: str, example: str) -> None:
    if not isinstance(value, types) or isinstance(value, bool):
        raise UserError(f"{name} must be {example}, got {type(value).__name__} {value!r}")


def _device(device, name: str = "device") -> None:
    _require(device, str, name, "'auto', 'cpu' or 'cuda'")


def _progress(progress) -> None:
    if not isinstance(progress, bool):  # 'no' is truthy: it would show progress
        raise UserError(f"progress must be True or False, got {type(progress).__name__} {progress!r}")


def _run_dir(run_dir) -> None:
    _require(run_dir, (str, os.PathLike), "run_dir", "a run directory (a path, 'latest' or the start of a run's name)")


def pythonic(fn):
    """UserError messages with the call's argument names instead of the CLI's flags."""
    pattern = re.compile("|".join(re.escape(flag) + r"(?![\w-])" for flag in sorted(ARGUMENTS, key=len, reverse=True)))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:  # the same class (RunBusy, Diverged, ... stay catchable), the message reworded
            e.args = (pattern.sub(lambda m: ARGUMENTS[m.group(0)], str(e)),)
            raise

    return wrapper


@pythonic
def train(agent: str, env_id: str, seed: int = 0, steps: int | None = None, overrides: dict | None = None,
          out=".", device: str = "auto", progress: bool = True, seeds: list[int] | None = None):
    """Train AGENT on ENV_ID with its card (+ `overrides`, as --set); returns the summary, run_dir included.
    With `seeds`, one run per seed trained together as one population; returns their summaries in order.
    progress: a bar on a terminal, a line every 30 s elsewhere (a notebook, a log); False for none."""
    _require(agent, str, "agent", "an agent's name such as 'ppo'")
    _device(device)
    _progress(progress)
    _require(out, (str, os.PathLike), "out", "a folder path")
    if seeds is not None:
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
            raise UserError(f"seeds must be a list of integers such as [0, 1, 2], got {type(seeds).__name__} {seeds!r}")
        return runs.train_seeds(agent, env_id, list(seeds), steps=steps, overrides=overrides, out=out, device=device,
                                progress=progress)
    return runs.train(agent, env_id, seed=seed, steps=steps, overrides=overrides, out=out, device=device,
                      progress=progress)


@pythonic
def resume(run_dir, steps: int | None = None, device: str | None = None, progress: bool = True) -> dict:
    """Continue a stopped run from its last checkpoint; with `steps`, train a finished one on to that total."""
    _run_dir(run_dir)
    _progress(progress)
    return runs.resume(run_dir, progress=progress, device=device, steps=steps)


@pythonic
def load(run_dir, device: str = "auto") -> runs.Policy:
    """The deterministic policy of a run directory: `policy(obs_batch)` or `policy.predict(obs)`."""
    _run_dir(run_dir)
    _device(device)
    return runs.load_policy(run_dir, device)


@pythonic
def evaluate(run_dir, episodes: int | None = None, seed: int | None = None, device: str = "auto") -> dict:
    """Re-evaluate a run directory's saved agent under the evaluation protocol."""
    _run_dir(run_dir)
    _device(device)
    if episodes is not None:
        _require(episodes, int, "episodes", "a number of episodes in [1, 10000]")
    return runs.evaluate_run(run_dir, episodes=episodes, seed=seed, device=device)
