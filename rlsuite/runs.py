"""Start, resume and re-evaluate runs: the library calls behind `rlsuite train` and `rlsuite eval`
(and, later, the sweep runner). Every bad input is checked before a run directory is created."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rlsuite.agents import get_agent
from rlsuite.cards import EnvCard, apply, resolve
from rlsuite.engine import EVAL_SEED_OFFSET, Run, load_checkpoint, new_run_dir, read_run_config, resolve_device
from rlsuite.envs import make_env, resolve_env_id
from rlsuite.errors import UserError
from rlsuite.evaluation import evaluate


def prepare(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None):
    """(AgentSpec, config, env card) with every check that can fail before training starts."""
    spec = get_agent(agent)
    resolve_env_id(env_id)
    config, card = resolve(agent, spec.config_cls, env_id, overrides)
    if steps is not None:
        if steps <= 0:
            raise UserError(f"--steps must be a positive number of environment steps, got {steps}")
        config = dataclasses.replace(config, total_steps=steps)
    env = make_env(card)
    try:
        spec.check_spaces(env.observation_space, env.action_space)
    finally:
        env.close()
    return spec, config, card


def train(agent: str, env_id: str, seed: int = 0, steps: int | None = None, overrides: dict | None = None,
          out: str | Path = "results", device: str = "auto", progress: bool = True,
          stop_at: int | None = None, name: str | None = None) -> dict:
    spec, config, card = prepare(agent, env_id, steps, overrides)
    dev = resolve_device(device)
    run_dir = new_run_dir(Path(out), agent, env_id, seed, name)
    with Run(run_dir, agent, config, card, seed, dev, progress=progress, stop_at=stop_at) as run:
        return spec.train(config, run)


def load_run(run_dir: str | Path):
    """(AgentSpec, config, env card, config.yaml data) for an existing run directory."""
    data = read_run_config(Path(run_dir))
    spec = get_agent(data["agent"])
    config = apply(spec.config_cls(), data["config"], f"{run_dir}/config.yaml")
    card = EnvCard(**data["env_card"]) if data.get("env_card") else None
    return spec, config, card, data


def resume(run_dir: str | Path, progress: bool = True, stop_at: int | None = None, device: str | None = None) -> dict:
    run_dir = Path(run_dir)
    spec, config, card, data = load_run(run_dir)
    if (run_dir / "summary.json").exists():
        raise UserError(f"{run_dir} is already complete (summary.json exists); start a new run instead")
    if data.get("implementation", "rlsuite") != "rlsuite":
        raise UserError(f"{run_dir} was made by {data['implementation']}; only rlsuite runs can be resumed")
    dev = resolve_device(device or data.get("device", "auto"))
    with Run(run_dir, data["agent"], config, card, data["seed"], dev, resume=True, progress=progress,
             stop_at=stop_at) as run:
        return spec.train(config, run)


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int | None = None,
                 device: str = "auto") -> dict:
    """Re-evaluate the saved agent of a run with the protocol's deterministic policy."""
    run_dir = Path(run_dir)
    spec, config, card, data = load_run(run_dir)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    if ckpt.get("agent") != data["agent"]:
        raise UserError(f"{run_dir}/checkpoints/last.pt belongs to agent {ckpt.get('agent')!r}, not {data['agent']!r}")
    episodes = config.final_eval_episodes if episodes is None else episodes
    if episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    seed = data["seed"] + EVAL_SEED_OFFSET if seed is None else seed
    dev = resolve_device(device)
    env = make_env(card, training=False)
    spaces = (env.observation_space, env.action_space)
    env.close()
    try:
        act = spec.load_policy(config, spaces, ckpt["state"], dev)
    except (KeyError, RuntimeError) as e:
        raise UserError(f"{run_dir}/checkpoints/last.pt does not match this run's network ({str(e).splitlines()[0][:100]})") from None
    returns = evaluate(act, card, episodes, seed)
    return {"run_dir": str(run_dir), "agent": data["agent"], "env_id": card.id, "step": ckpt["step"],
            "episodes": episodes, "seed": seed, "mean": float(np.mean(returns)), "std": float(np.std(returns)),
            "returns": returns.tolist()}


def reuse_or_train(out: str | Path, name: str, train_fn, force: bool = False, fingerprint: dict | None = None) -> dict:
    """The summary of the finished run OUT/runs/NAME, or train it (train_fn(name=NAME)) when it is
    missing, unfinished, made with different settings (`fingerprint`), or `force` is set. Lets
    benchmarks, comparisons and sweeps continue where they stopped without reusing stale runs."""
    import json
    import shutil

    run_dir = Path(out) / "runs" / name
    summary, stamp = run_dir / "summary.json", run_dir / "fingerprint.json"
    fingerprint = json.loads(json.dumps(fingerprint, default=str)) if fingerprint is not None else None
    same = fingerprint is None or (stamp.exists() and _experiment(json.loads(stamp.read_text())) == _experiment(fingerprint))
    if summary.exists() and same and not force:
        return json.loads(summary.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted, failed, stale or forced run is redone from scratch
    result = train_fn(name=name)
    if fingerprint is not None and run_dir.exists():
        stamp.write_text(json.dumps(fingerprint, indent=1))
    return result


def _experiment(stamp: dict) -> dict:
    """The part of a fingerprint that changes what a run computes: an env card's prose and benchmark
    budget do not (the steps actually trained are in the config), so editing them reuses the runs."""
    stamp = dict(stamp)
    if isinstance(stamp.get("env_card"), dict):
        stamp["env_card"] = {k: v for k, v in stamp["env_card"].items() if k not in ("notes", "budget")}
    if stamp.get("steps") is None and isinstance(stamp.get("hyperparameters"), dict):
        stamp["steps"] = stamp["hyperparameters"].get("n_timesteps")  # an SB3 run at the zoo's own budget
    return stamp


def fingerprint(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> dict:
    """What makes two rlsuite runs the same experiment: agent, env, resolved config."""
    from rlsuite.cards import to_data

    _, config, card = prepare(agent, env_id, steps, overrides)
    return {"agent": agent, "env_id": env_id, "config": to_data(config), "env_card": dataclasses.asdict(card)}
