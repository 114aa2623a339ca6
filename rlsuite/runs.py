"""Start, resume and re-evaluate runs: the library calls behind `rlsuite train` and `rlsuite eval`
(and the runs of every multi-run command). It dispatches on a run directory's implementation: rlsuite's
agents through the registry, SB3 baselines through rlsuite.sb3. Every bad input is checked before a run
directory is created."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import shutil
import sys
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlsuite.config.cards import agent_card_path, env_card_from_data, load_agent_card, resolve
from rlsuite.config.schema import EnvCard, apply, check_env_card, check_seed, check_steps, to_data
from rlsuite.core.seeding import EVAL_ACTIONS, SEEDING, Seeds, episode_seeds
from rlsuite.core.errors import UserError
from rlsuite.envs.make import make_env, make_vector_env, resolve_auto, resolve_env_id
from rlsuite.envs.video import check_can_record
from rlsuite.learn.nets import bf16_is_native
from rlsuite.registry import get_agent
from rlsuite.run import evaluation
from rlsuite.run.checkpoint import load_checkpoint, nonfinite_tensors
from rlsuite.run.engine import NOT_LEARNED, Run, resolve_device, seeding_version
from rlsuite.run.live import LiveRuns
from rlsuite.run.population import Population
from rlsuite.run.tracking import check_tracker
from rlsuite.run.rundir import (DEFAULT_RUNS, RunBusy, RunLock, find_runs, new_run_dir, read_run_config, read_status,
                                resolve_run, write_run_config)
from rlsuite.sb3.baseline import load_sb3_policy, resumable_baseline, resume_baseline
from rlsuite.sb3.hyperparameters import BaselineConfig
from rlsuite.supervised.classifier import evaluate_supervised_run


def prepare(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None,
            env_kwargs: dict | None = None, env_changes: dict | None = None):
    """(AgentSpec, config, env card) with every check that can fail before training starts. env_kwargs:
    constructor arguments over the card's make_kwargs; env_changes: other env-card fields (e.g.
    {"vectorization": "envpool"}), as a benchmark varies them."""
    spec = get_agent(agent, kind="rl")
    check_tracker()
    resolve_env_id(env_id, extras=False)  # the env's extras are checked where it is built, after the backend's check
    if steps is not None:
        check_steps(steps)
    config, card = resolve(agent, spec.config_cls, env_id, overrides, env_kwargs)
    if env_changes:
        card = check_env_card(dataclasses.replace(card, **env_changes), "env card changes")
    if card.vectorization == "auto":  # resolved here, so config.yaml records (and resume reuses) the backend used

        card = resolve_auto(card)
    if steps is not None:
        config = dataclasses.replace(config, total_steps=steps)
        config.validate()  # the budget against what depends on it (e.g. one rollout must fit)
    if card.backend == "torch":  # the torch backend has this env and takes these arguments: checked first
        make_vector_env(card, 1).close()
    env = make_env(card)
    try:
        if getattr(config, "net", None) == "auto":  # resolved here, so config.yaml records the trunk a run uses
            config = dataclasses.replace(config, net="cnn" if len(env.observation_space.shape) == 3 else "mlp")
        spec.check_spaces(env.observation_space, env.action_space, config, card)
        if card.make_kwargs:  # constructor arguments a reset or a step rejects: one line now, not a crash later
            try:
                env.reset(seed=0)
                env.step(env.action_space.sample())
            except (TypeError, ValueError, RuntimeError, AssertionError, gym.error.Error) as e:
                raise UserError(f"{card.id} fails with the env arguments {card.make_kwargs} (env card make_kwargs / "
                                f"--env-kwargs): {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}") from None
    finally:
        env.close()
    if getattr(config, "video_every", None):  # filming must work before a run that films starts

        check_can_record(card)
    return spec, config, card


def train(agent: str, env_id: str, seed: int = 0, steps: int | None = None, overrides: dict | None = None,
          out: str | Path = ".", device: str = "auto", progress: bool = True,
          stop_at: int | None = None, name: str | None = None, lock: RunLock | None = None,
          on_eval=None, env_kwargs: dict | None = None, env_changes: dict | None = None) -> dict:
    """Train AGENT on ENV_ID with its card (+ overrides); returns the summary (or the interrupted result).
    on_eval(step, mean) is called after each periodic evaluation; True stops the run (see engine.Run)."""
    check_seed(seed)
    spec, config, card = prepare(agent, env_id, steps, overrides, env_kwargs, env_changes)
    dev = resolve_device(device)
    run_dir = new_run_dir(Path(out), agent, env_id, seed, name, exist_ok=lock is not None)
    for note in start_notes(config, dev):  # once every check has passed: the run does start
        print(note, file=sys.stderr, flush=True)
    with Run(run_dir, agent, config, card, seed, dev, progress=progress, stop_at=stop_at, lock=lock,
             on_eval=on_eval) as run:
        return spec.train(config, run)


def train_seeds(agent: str, env_id: str, seeds: list[int], steps: int | None = None, overrides: dict | None = None,
                out: str | Path = ".", device: str = "auto", progress: bool = True, env_kwargs: dict | None = None,
                env_changes: dict | None = None, stop_at: int | None = None) -> list[dict]:
    """Train AGENT on ENV_ID once per seed, each in its own run directory; returns one result per seed. Where the
    agent trains populations, all seeds train together in this process as one population (stacked networks,
    one vector env, one optimiser step); otherwise one after another."""
    seeds = check_seeds(seeds)
    spec, config, card = prepare(agent, env_id, steps, overrides, env_kwargs, env_changes)
    together = spec.train_population is not None and (spec.batchable is None or spec.batchable(config))
    if len(seeds) == 1 or not together:
        return [train(agent, env_id, seed=s, steps=steps, overrides=overrides, out=out, device=device, progress=progress,
                      env_kwargs=env_kwargs, env_changes=env_changes, stop_at=stop_at) for s in seeds]
    dev = resolve_device(device)
    run_dirs = [new_run_dir(Path(out), agent, env_id, s, None) for s in seeds]
    for note in start_notes(config, dev):
        print(note, file=sys.stderr, flush=True)
    return train_members(spec, config, card, seeds, run_dirs, dev, progress, stop_at=stop_at)


def train_members(spec, config, card, seeds: list[int], run_dirs: list[Path], device: torch.device,
                  progress: bool, resume: bool = False, locks: list[RunLock] | None = None,
                  stop_at: int | None = None, on_evals: list | None = None) -> list[dict]:
    """Train (or, with `resume`, continue from their checkpoints) these run directories as one population.
    on_evals: each member's Run on_eval callback (a tuner's pruning; one member pruned stops them all).
    progress: a population of one shows its run's bar; several, one live line per member."""
    locks = locks or [None] * len(seeds)
    on_evals = on_evals or [None] * len(seeds)
    one = len(seeds) == 1
    with contextlib.ExitStack() as stack:
        members = [stack.enter_context(Run(d, spec.name, config, card, s, device, progress=progress and one,
                                           resume=resume, lock=lock, stop_at=stop_at, on_eval=on_eval,
                                           extra={"population": seeds}))
                   for d, s, lock, on_eval in zip(run_dirs, seeds, locks, on_evals)]
        if progress and not one:
            stack.enter_context(LiveRuns(run_dirs, f"{spec.name} {card.id}, {len(seeds)} seeds in one population"))
        with Population(members) as population:
            return spec.train_population(config, population)


def reuse_or_train_seeds(out: str | Path, names: list[str], seeds: list[int], agent: str, env_id: str,
                         steps: int | None = None, overrides: dict | None = None, force: bool = False,
                         fingerprint: dict | None = None, progress: bool = False, stop_at: int | None = None,
                         device: str = "auto", on_eval_of=None) -> list[dict]:
    """reuse_or_train for the seeds of one experiment, trained as one population: finished runs OUT/runs/NAME
    are reused; runs interrupted at one step resume together; the rest train together from scratch. A run
    another live process holds is left to it: its result is {"status": "busy", "error": ...}. Agents without
    populations go seed by seed through reuse_or_train. on_eval_of(i): the on_eval callback of seeds[i]'s run."""
    spec, config, card = prepare(agent, env_id, steps, overrides)
    on_eval_of = on_eval_of or (lambda i: None)
    if spec.train_population is None or (spec.batchable is not None and not spec.batchable(config)) or len(seeds) == 1:
        return [reuse_or_train(out, name, partial(train, agent, env_id, seed=seed, steps=steps, overrides=overrides,
                                                  out=out, progress=False, device=device, on_eval=on_eval_of(i)),
                               force, fingerprint, on_eval=on_eval_of(i))
                for i, (name, seed) in enumerate(zip(names, seeds))]
    run_dirs = [Path(out) / "runs" / name for name in names]
    fingerprint = json.loads(json.dumps(fingerprint, default=str)) if fingerprint is not None else None
    results: list[dict | None] = [None] * len(seeds)
    with contextlib.ExitStack() as stack:
        locks: list[RunLock | None] = []
        for i, run_dir in enumerate(run_dirs):
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create {run_dir} ({e.strerror}); choose a writable --out") from None
            try:
                locks.append(stack.enter_context(RunLock(run_dir)))
            except RunBusy as e:
                locks.append(None)
                results[i] = {"status": "busy", "error": str(e), "run_dir": str(run_dir), "seed": seeds[i]}
        open_members = []
        for i, run_dir in enumerate(run_dirs):
            if locks[i] is None:
                continue
            same = _same_experiment(run_dir, fingerprint)
            if same and not force and (run_dir / "summary.json").exists():
                try:
                    results[i] = json.loads((run_dir / "summary.json").read_text())
                    continue
                except (OSError, ValueError) as e:
                    raise UserError(f"{run_dir / 'summary.json'} cannot be read ({getattr(e, 'strerror', None) or e}); "
                                    "restore it, or delete the run directory to train that run again") from None
            open_members.append(i)
        if not open_members:
            return results
        groups: dict[int | None, list[int]] = {}  # checkpoint step -> members that resume from it; None: afresh
        for i in open_members:
            run_dir = run_dirs[i]
            ok = (_same_experiment(run_dir, fingerprint) and not force and fingerprint is not None
                  and (run_dir / "checkpoints" / "last.pt").exists() and (run_dir / "config.yaml").exists()
                  and read_status(run_dir)["status"] in ("interrupted", "running"))
            groups.setdefault(checkpoint_step(run_dir) if ok else None, []).append(i)
        for i in groups.get(None, []):  # failed, stale or forced: redone from scratch
            for child in run_dirs[i].iterdir():
                if child.name != "lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            if fingerprint is not None:
                (run_dirs[i] / "fingerprint.json").write_text(json.dumps(fingerprint, indent=1))
        dev = resolve_device(device)
        # members stopped at one checkpoint resume together (one population per step); the rest start together
        for step, members in sorted(groups.items(), key=lambda kv: kv[0] is None):
            trained = train_members(spec, config, card, [seeds[i] for i in members], [run_dirs[i] for i in members],
                                    dev, progress, resume=step is not None, locks=[locks[i] for i in members],
                                    stop_at=stop_at, on_evals=[on_eval_of(i) for i in members])
            for i, summary in zip(members, trained):
                results[i] = summary
            stopped = [r for r in trained if r.get("status") == "interrupted"]
            if stopped:  # a signal: the groups not yet started stay as they are
                return [r if r is not None else {**stopped[0], "run_dir": str(d), "seed": s}
                        for r, d, s in zip(results, run_dirs, seeds)]
    return results


def trains_together(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> bool:
    """Whether this experiment's seeds train as one population (else one after another)."""
    spec, config, _ = prepare(agent, env_id, steps, overrides)
    return spec.train_population is not None and (spec.batchable is None or spec.batchable(config))


MAX_SEEDS = 1000


def check_seeds(seeds, what: str = "seeds") -> list[int]:
    """Seeds as a list of distinct valid seeds."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [int(seeds)]
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise UserError(f"{what} must be a non-empty list of integers, got {seeds!r}")
    seeds = [check_seed(s, f"each of {what}") for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{what} must be distinct, got {seeds}")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"{what}: at most {MAX_SEEDS} seeds at once, got {len(seeds)}")
    return seeds


def parse_seeds(text: str) -> list[int]:
    """'0-9', '0,3,7' or '0-4,8' as a list of seeds."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else (None, None)
                low, high = int(low), int(high)
                if high < low or high - low >= MAX_SEEDS:
                    raise ValueError
                seeds += list(range(low, high + 1))
            else:
                seeds.append(int(part))
        except (TypeError, ValueError):
            raise UserError(f"--seeds {text!r}: give seeds as 0-9, 0,3,7 or 0-4,8 (non-negative integers)") from None
    return check_seeds(seeds, "--seeds")


def start_notes(config, device: torch.device) -> list[str]:
    return [note for note in (budget_note(config), precision_note(config, device)) if note is not None]


def precision_note(config, device: torch.device, resuming: bool = False) -> str | None:
    """bf16 on hardware without bf16 units is emulated: slower than fp32, the opposite of why it was asked for."""
    if getattr(config, "precision", "fp32") != "bf16" or bf16_is_native(device):
        return None
    fix = ("a resumed run keeps its precision; a new run with --set precision=fp32 would be faster here" if resuming
           else "--set precision=fp32 is faster here")
    return (f"note: precision=bf16, but this {device.type.upper()} has no native bfloat16 matrix multiplies "
            f"(AVX512-BF16 or AMX): they are emulated, slower than fp32; {fix}")


def budget_note(config) -> str | None:
    """A run too short to learn anything looks like a run that learned nothing: say so before it starts
    (an off-policy agent acts at random, without a gradient step, until learning_starts)."""
    starts = getattr(config, "learning_starts", None)
    if starts is None or config.total_steps > starts:
        return None
    return (f"note: this run's {config.total_steps:,} steps end before learning starts (learning_starts "
            f"{starts:,}): every action is random and no gradient step runs; give more --steps or "
            "--set learning_starts=N")


def load_run(run_dir: str | Path):
    """(AgentSpec, config, env card, config.yaml data) for an existing run directory, every part checked."""
    run_dir = Path(run_dir)
    data = read_run_config(run_dir)
    spec = get_agent(data["agent"])
    config_cls = spec.config_cls
    if data.get("implementation", "rlsuite") == "sb3":  # SB3's own hyperparameters are in its baseline section
        config_cls = BaselineConfig
    config = apply(config_cls(), data["config"], f"{run_dir}/config.yaml [config]")
    card = env_card_from_data(data.get("env_card"), f"{run_dir}/config.yaml")
    if card is not None and data.get("env_id") != card.id:
        raise UserError(f"{run_dir}/config.yaml: env_id {data.get('env_id')!r} disagrees with its env card's id "
                        f"{card.id!r}; the file was edited, restore it")
    return spec, config, card, data


def resume(run_dir: str | Path, progress: bool = True, stop_at: int | None = None, device: str | None = None,
           steps: int | None = None, lock: RunLock | None = None, on_eval=None) -> dict:
    """Continue a stopped run from its last checkpoint. With `steps` larger than the run's budget, a
    stopped or finished run trains on to the new total (its schedules stretch over the new budget)."""
    run_dir = resolve_run(run_dir)
    spec, config, card, data = load_run(run_dir)
    if data.get("implementation", "rlsuite") == "sb3" and steps is None:
        return resume_baseline(run_dir, progress=progress, stop_at=stop_at, device=device, lock=lock, on_eval=on_eval)
    if data.get("implementation", "rlsuite") != "rlsuite":
        raise UserError(f"{run_dir} was made by {data['implementation']}; it can continue to its own budget "
                        "(without --steps), not beyond it")
    if data["agent"] == "supervised":
        raise UserError(f"{run_dir} is a supervised run; train a new one with `rlsuite supervised`")
    lock = lock if lock is not None and lock.held else RunLock(run_dir).acquire()
    try:
        complete = (run_dir / "summary.json").exists()
        if steps is not None:
            if steps <= config.total_steps and complete:
                raise UserError(f"{run_dir} is complete at {config.total_steps:,} steps; to train on, give a larger "
                                f"total: --steps N with N > {config.total_steps:,}")
            check_steps(steps)
            ckpt_step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
            if steps <= ckpt_step:
                raise UserError(f"--steps {steps:,} is not beyond the checkpoint's step {ckpt_step:,}; give a larger total")
            config = dataclasses.replace(config, total_steps=steps)
            config.validate()
            data["config"]["total_steps"] = steps
            data.setdefault("extended", []).append(steps)
            write_run_config(run_dir, data)
            if complete:  # the run goes on: its summary described the old budget
                (run_dir / "summary.json").unlink()
                complete = False
        if complete:
            raise UserError(f"{run_dir} is already complete (summary.json exists); start a new run, or train it "
                            "further with --resume RUN --steps N")
        probe = make_env(card)  # the memory this machine needs for it (a run may move to a smaller one)
        try:
            spec.check_spaces(probe.observation_space, probe.action_space, config, card)
        finally:
            probe.close()
        dev = resolve_device(device or data.get("device", "auto"))
        if dev.type == "cuda" and data.get("device", "cpu").startswith("cpu") and device is None:
            dev = resolve_device("auto")
        if (note := precision_note(config, dev, resuming=True)) is not None:  # moved to a machine without bf16 units
            print(note, file=sys.stderr, flush=True)
        with Run(run_dir, data["agent"], config, card, data["seed"], dev, resume=True, progress=progress,
                 stop_at=stop_at, lock=lock, on_eval=on_eval) as run:
            return spec.train(config, run)
    finally:
        lock.release()


def list_runs(root: str | Path = DEFAULT_RUNS, agent: str | None = None, env: str | None = None,
              status: str | None = None) -> list[dict]:
    """Every run under ROOT (compare's, sweep's and tune's nested runs too), oldest first: name, path, agent, env,
    seed, implementation, status, steps, final result (evaluation mean, or test accuracy) and start time. AGENT,
    ENV and STATUS filter (ENV also matches a part of the id, e.g. CartPole)."""
    if not str(root).strip():  # Path("") is the current directory: an empty argument is a mistake, not "."
        raise UserError("the folder to list is empty; give a folder of runs (default: ./runs)")
    rows = []
    for run_dir in find_runs(Path(root)):
        try:
            config = read_run_config(run_dir)
        except UserError:
            continue  # a folder with a broken config.yaml is not a run to list
        state = read_status(run_dir)
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError, RecursionError):
            summary = {}
        summary = summary if isinstance(summary, dict) else {}
        final = summary.get("final_eval", {}).get("mean") if isinstance(summary.get("final_eval"), dict) else None
        if final is None and summary.get("test_acc") is not None:
            final = summary["test_acc"]
        final = final if isinstance(final, (int, float)) and not isinstance(final, bool) else None
        step = state.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None  # an edited file
        row = {"name": run_dir.name, "run_dir": str(run_dir), "agent": config["agent"],
               "env_id": config.get("env_id") or config.get("config", {}).get("dataset") or "-", "seed": config["seed"],
               "implementation": config.get("implementation", "rlsuite"), "status": state["status"],
               "step": step, "final": final, "created": str(config.get("created", ""))}
        if ((agent and row["agent"] != agent) or (status and row["status"] != status)
                or (env and env != row["env_id"] and env.lower() not in str(row["env_id"]).lower())):
            continue
        rows.append(row)
    return sorted(rows, key=lambda r: (r["created"], r["name"]))


def evaluate(run_dir: str | Path, episodes: int | None = None, seed: int | None = None, device: str = "auto") -> dict:
    """Re-evaluate any run directory: an RL run's policy over episodes, a classifier on its test set."""
    run_dir = resolve_run(run_dir)
    if get_agent(read_run_config(run_dir)["agent"]).kind == "supervised":
        if episodes is not None or seed is not None:
            raise UserError("--episodes and --seed apply to RL runs; a supervised run is evaluated on its test set")
        return evaluate_supervised_run(run_dir, device=device)
    return evaluate_run(run_dir, episodes=episodes, seed=seed, device=device)


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int | None = None,
                 device: str = "auto") -> dict:
    """Re-evaluate the saved agent of a run (rlsuite's or an SB3 baseline's) with the protocol's
    deterministic policy."""
    run_dir = resolve_run(run_dir)
    policy = load_policy(run_dir, device)
    if episodes is not None and (isinstance(episodes, bool) or not 0 < episodes <= 10_000):
        raise UserError(f"--episodes must be in [1, 10000], got {episodes}")
    episodes = policy.config.final_eval_episodes if episodes is None else episodes
    # the run's own evaluation seeds, or SEED, SEED + 1, ... given by the caller
    seeds = Seeds(policy.seed, policy.seeding).eval_envs(episodes) if seed is None else episode_seeds(check_seed(seed), episodes)
    stochastic = not getattr(policy.config, "eval_deterministic", True)  # the run's own mode, reported with it
    returns, cut = evaluation.evaluate_episodes(policy.sample() if stochastic else policy.act, policy.env_card,
                                                episodes, seeds)
    return {"run_dir": str(run_dir), "agent": policy.agent, "implementation": policy.implementation,
            "env_id": policy.env_card.id, "step": policy.step, "episodes": episodes,
            "seed": seed, "seeds": seeds,
            "mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns.tolist(),
            "cut_at_max_steps": cut, "deterministic": not stochastic}


@dataclasses.dataclass
class Policy:
    """A run's saved agent as a callable: `policy(obs_batch) -> actions` (deterministic, as evaluated).
    `predict(obs)` takes one observation or a batch, as SB3's does."""

    act: object
    agent: str
    implementation: str
    env_card: EnvCard
    config: object
    seed: int
    step: int
    run_dir: Path
    obs_shape: tuple
    seeding: int = SEEDING  # the run's seeding scheme (rlsuite.core.seeding): which evaluation seeds are its own
    sampler: object = None  # () -> the stochastic policy (eval_deterministic: false; predict(deterministic=False))

    def sample(self):
        """The stochastic policy, built on first use (an agent of your own may offer none)."""
        if not callable(getattr(self, "_sampling", None)):
            self._sampling = self.sampler()
        return self._sampling

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The actions for a batch of observations (N, *obs_shape), checked as predict checks them."""
        obs = self._checked(obs)
        if obs.shape[1:] != tuple(self.obs_shape) or obs.ndim == len(self.obs_shape):
            raise UserError(f"policy(obs_batch): {self.env_card.id}'s observations have shape {tuple(self.obs_shape)}, "
                            f"so a batch is (N, {', '.join(map(str, self.obs_shape))}); got shape {obs.shape} "
                            "(predict takes a single observation)")
        return self.act(obs)

    def _checked(self, obs) -> np.ndarray:
        try:
            obs = np.asarray(obs)
        except (TypeError, ValueError):  # ragged nested lists
            raise UserError(f"the observation is not an array of numbers ({type(obs).__name__})") from None
        if obs.dtype.kind not in "fiub":
            raise UserError(f"the observation holds {obs.dtype} values; give numbers")
        if obs.dtype.kind == "f" and not np.isfinite(obs).all():
            raise UserError("the observation holds NaN or infinity; give finite numbers")
        return obs

    def predict(self, obs, deterministic: bool = True) -> np.ndarray:
        """The action for one observation, or the actions for a batch (a vector env's observations): the
        deterministic policy the protocol evaluates (greedy, or the mean action), or with deterministic=False a
        sample (the policy's distribution; DQN ε-greedy at its final ε; TD3 with its exploration noise)."""
        if not isinstance(deterministic, bool):
            raise UserError(f"predict: deterministic must be True or False, got {deterministic!r}")
        act = self.act if deterministic else self.sample()
        obs = self._checked(obs)
        shape = tuple(self.obs_shape)
        if obs.shape == shape:  # one observation: add and remove the batch axis
            return act(obs[None])[0]
        if obs.shape[1:] == shape and len(obs):
            return act(obs)
        raise UserError(f"predict: {self.env_card.id}'s observations have shape {shape} (a batch: (N, {', '.join(map(str, shape))})); "
                        f"got shape {obs.shape}")


def _sampling_policy(spec, config, spaces, state, device, seed: int):
    """An agent's stochastic policy, with the run's own evaluation-action seed; an agent whose load_policy takes
    no sample_seed offers none."""
    if "sample_seed" not in inspect.signature(spec.load_policy).parameters:
        raise UserError(f"the {spec.name} agent offers no stochastic policy (its load_policy takes no sample_seed); "
                        "use the deterministic one")
    return spec.load_policy(config, spaces, state, device, sample_seed=seed)


def load_policy(run_dir: str | Path, device: str = "auto") -> Policy:
    """The deterministic policy of any RL run directory, the loader chosen by the run's implementation."""
    run_dir = resolve_run(run_dir)
    spec, config, card, data = load_run(run_dir)
    if card is None:
        raise UserError(f"{run_dir} has no environment (a supervised run); use `rlsuite eval` for its accuracy")
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    implementation = data.get("implementation", "rlsuite")
    made_by = (ckpt.get("agent"), ckpt.get("implementation", "rlsuite"))
    if made_by != (data["agent"], implementation):
        raise UserError(f"{run_dir}/checkpoints/last.pt holds a {made_by[1]} {made_by[0]} checkpoint, but config.yaml "
                        f"describes a {implementation} {data['agent']} run; the directory was mixed up")

    bad = nonfinite_tensors({k: v for k, v in ckpt["state"].items() if k not in NOT_LEARNED})
    if bad:
        raise UserError(f"{run_dir}/checkpoints/last.pt holds non-finite weights ({bad[0]}); it cannot be evaluated")
    dev = resolve_device(device)
    env = make_env(card, training=False)
    spaces = (env.observation_space, env.action_space)
    env.close()
    try:
        if implementation == "sb3":
            act = load_sb3_policy(data, card, ckpt["state"], dev)
            sampler = partial(load_sb3_policy, data, card, ckpt["state"], dev, deterministic=False)
        else:
            act = spec.load_policy(config, spaces, ckpt["state"], dev)
            sampler = partial(_sampling_policy, spec, config, spaces, ckpt["state"], dev,
                              Seeds(data["seed"], seeding_version(data)).torch_seed(EVAL_ACTIONS))
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise UserError(f"{run_dir}/checkpoints/last.pt does not match the network config.yaml describes "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''})") from None
    return Policy(act, data["agent"], implementation, card, config, data["seed"], ckpt["step"], run_dir,
                  tuple(spaces[0].shape), seeding_version(data), sampler)


def reuse_or_train(out: str | Path, name: str, train_fn, force: bool = False, fingerprint: dict | None = None,
                   on_eval=None) -> dict:
    """The summary of the finished run OUT/runs/NAME; else resume it when it was interrupted (or its
    process killed) with the same settings; else train it afresh (train_fn(name=NAME, lock=...)).
    Lets benchmarks, comparisons and sweeps continue where they stopped without reusing stale runs.
    The run's lock is taken first: a run another live process is training raises RunBusy and is left
    alone (two sweeps on one --out never delete each other's runs)."""

    run_dir = Path(out) / "runs" / name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {run_dir} ({e.strerror}); choose a writable --out") from None
    with RunLock(run_dir) as lock:
        stamp = run_dir / "fingerprint.json"
        fingerprint = json.loads(json.dumps(fingerprint, default=str)) if fingerprint is not None else None
        same = _same_experiment(run_dir, fingerprint)
        summary = run_dir / "summary.json"
        if same and not force and summary.exists():
            try:  # finished: reused. An unreadable summary is reported, never a reason to delete the run
                return json.loads(summary.read_text())
            except (OSError, ValueError) as e:
                raise UserError(f"{summary} cannot be read ({getattr(e, 'strerror', None) or e}); restore it, or "
                                "delete the run directory to train that run again") from None
        resumable = (same and not force and fingerprint is not None and (run_dir / "checkpoints" / "last.pt").exists()
                     and read_status(run_dir)["status"] in ("interrupted", "running")
                     and (run_dir / "config.yaml").exists())
        implementation = read_run_config(run_dir).get("implementation", "rlsuite") if resumable else None
        if implementation == "rlsuite":
            return resume(run_dir, progress=False, lock=lock, on_eval=on_eval)
        if implementation == "sb3":
            if resumable_baseline(run_dir):  # an SB3 run checkpointed before it could resume starts over
                return resume_baseline(run_dir, progress=False, lock=lock, on_eval=on_eval)
        for child in run_dir.iterdir():  # a failed, stale or forced run is redone from scratch
            if child.name != "lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if fingerprint is not None:
            stamp.write_text(json.dumps(fingerprint, indent=1))
        return train_fn(name=name, lock=lock)


def checkpoint_step(run_dir: Path) -> int:
    """The step of a stopped run's last checkpoint (its status says it when it stopped cleanly)."""
    status = read_status(run_dir)
    if status["status"] == "interrupted" and isinstance(status.get("step"), int):
        return status["step"]
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]  # killed: the checkpoint itself says


def _same_experiment(run_dir: Path, fingerprint: dict | None) -> bool:
    stamp = run_dir / "fingerprint.json"
    try:
        old = json.loads(stamp.read_text())
    except (OSError, ValueError, RecursionError):  # missing, or removed by the process redoing a stale run as we look
        old = None
    return fingerprint is None or (old is not None and same_experiment(old, fingerprint))


def same_experiment(old: dict, new: dict) -> bool:
    """Whether two fingerprints (runs.fingerprint; `old` as read back from JSON) name the same experiment:
    equal once storage-only fields, prose, and fields at their defaults are left out on both sides (a field
    added to a config later does not make older stamps stale)."""
    return _experiment(old) == _experiment(json.loads(json.dumps(new, default=str)))


def finished_summary(out: str | Path, name: str, fingerprint: dict | None = None) -> dict | None:
    """The summary of OUT/runs/NAME if that run finished with these settings, else None. Only looks: no
    lock, nothing trained, resumed or deleted; so a benchmark can report cells another process trains
    (summary.json is written atomically and last, so it is whole whenever it exists)."""
    run_dir = Path(out) / "runs" / name
    summary = run_dir / "summary.json"
    if not summary.exists() or not _same_experiment(run_dir, fingerprint):
        return None
    try:
        return json.loads(summary.read_text())
    except (OSError, ValueError):
        return None


STORAGE_ONLY = ("save_buffer", "checkpoint_every", "checkpoint_minutes", "video_every", "log_every")


def _experiment(stamp: dict) -> dict:
    """The part of a fingerprint that changes what a run computes: an env card's prose and benchmark
    budget do not (the steps actually trained are in the config), so editing them reuses the runs."""
    stamp = dict(stamp)
    stamp.setdefault("seeding", 1)  # a run stamped before the seeding scheme had a version used version 1
    # Fields at their defaults are left out on both sides, so that a field added to a config or an env card
    # later (with a default that changes nothing) does not make every finished run look stale.
    card_defaults = json.loads(json.dumps(dataclasses.asdict(EnvCard(id="")), default=str))
    if isinstance(stamp.get("env_card"), dict):
        stamp["env_card"] = {k: v for k, v in stamp["env_card"].items()
                             if k not in ("notes", "budget") and not (k in card_defaults and k != "id" and v == card_defaults[k])}
    if isinstance(stamp.get("config"), dict):
        try:
            defaults = json.loads(json.dumps(to_data(get_agent(stamp["agent"]).config_cls()), default=str))
        except UserError:
            defaults = {}
        stamp["config"] = {k: v for k, v in stamp["config"].items() if not (k in defaults and v == defaults[k])}
    for part in ("config", "hyperparameters"):  # how a run is stored or filmed does not change what it computes
        if isinstance(stamp.get(part), dict):
            stamp[part] = {k: v for k, v in stamp[part].items() if k not in STORAGE_ONLY}
    if stamp.get("steps") is None and isinstance(stamp.get("hyperparameters"), dict):
        stamp["steps"] = stamp["hyperparameters"].get("n_timesteps")  # an SB3 run at the zoo's own budget
    return stamp


def resolved_values(agent: str, config_cls, env_id: str | None, rl: bool = True) -> dict:
    """Field -> the value a run uses: the card's default entry, and with `env_id` the whole resolution
    (env card settings and the card's entry for that env)."""
    if env_id is not None and not rl:
        raise UserError(f"--env applies to RL agents; {agent} has no environment")
    if env_id is not None:
        resolve_env_id(env_id)
        config, _ = resolve(agent, config_cls, env_id)
    else:
        config = apply(config_cls(), load_agent_card(agent).get("default") or {}, f"{agent_card_path(agent)} [default]")
    out = to_data(config)
    return {k: (v if not isinstance(v, list) else tuple(v)) if not isinstance(v, dict) else v for k, v in out.items()}


def fingerprint(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None,
                env_kwargs: dict | None = None, env_changes: dict | None = None) -> dict:
    """What makes two rlsuite runs the same experiment: agent, env, resolved config."""

    _, config, card = prepare(agent, env_id, steps, overrides, env_kwargs, env_changes)
    return {"agent": agent, "env_id": env_id, "config": to_data(config), "env_card": dataclasses.asdict(card),
            "seeding": SEEDING}
