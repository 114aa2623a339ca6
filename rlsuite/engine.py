"""The run engine: a toolbox every agent calls from its own loop.

A `Run` owns the run directory and the services around training: seeding, metrics.csv and
TensorBoard, periodic evaluation on a separate env, atomic checkpoints and exact resume, the
progress bar, Ctrl-C, and summary.json. The agent's `train(config, run)` decides when to call them.

Run directory (the unit every command exchanges):
  config.yaml     resolved hyperparameters, env card, seed, versions
  metrics.csv     step, wall_s, episode_return, episode_length, eval_mean, eval_std
  events.*        TensorBoard scalars (charts/, losses/, eval/) and the hyperparameters as text
  checkpoints/last.pt   weights, optimiser, counters, RNG states (+ replay buffer, env state)
  status.json     running | interrupted | failed | complete
  summary.json    written only when the run completes (final 20-episode evaluation)
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import datetime as dt
import enum
import io
import json
import os
import platform
import random
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
import yaml

from rlsuite import __version__
from rlsuite.cards import EnvCard, to_data
from rlsuite.errors import UserError
from rlsuite.evaluation import evaluate
from rlsuite.envs import threshold as env_threshold
from rlsuite.stats import solve_stats

METRIC_COLUMNS = ["step", "wall_s", "episode_return", "episode_length", "eval_mean", "eval_std"]
CHECKPOINT_FORMAT = "rlsuite-checkpoint-v1"
EVAL_SEED_OFFSET = 10_000  # evaluation envs are seeded apart from the training streams


# ---------------------------------------------------------------------------------------------
# Devices, seeds, versions
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict:
    import stable_baselines3

    return {"rlsuite": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
            "gymnasium": gym.__version__, "numpy": np.__version__, "stable_baselines3": stable_baselines3.__version__}


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}"


# ---------------------------------------------------------------------------------------------
# Plain-data encoding of numpy/RNG/env state, so that checkpoints load with weights_only=True.
class _NotPlain(Exception):
    pass


def encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # before the builtins: np.float64 is a float subclass
        return {"__npscalar__": value.item(), "dtype": value.dtype.str}
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _NotPlain(value)
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy()), "dtype": value.dtype.str}
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, collections.deque):
        return {"__deque__": [encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    raise _NotPlain(value)


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().astype(np.dtype(value["dtype"]), copy=True)
    if "__npscalar__" in value:
        return np.dtype(value["dtype"]).type(value["__npscalar__"])
    if "__generator__" in value:
        state = value["__generator__"]
        gen = np.random.Generator(getattr(np.random, state["bit_generator"])())
        gen.bit_generator.state = state
        return gen
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__deque__" in value:
        return collections.deque((decode(v) for v in value["__deque__"]), maxlen=value["maxlen"])
    if "__dict__" in value:
        return {k: decode(v) for k, v in value["__dict__"].items()}
    return {k: decode(v) for k, v in value.items()}


def rng_state() -> dict:
    return encode({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()})


def set_rng_state(state: dict) -> None:
    state = decode(state)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# Env state: the plain attributes of every wrapper and of the base env (positions, counters,
# np_random). Static configuration (spaces, specs, metadata, enums) is skipped; anything else that
# is not plain data (a Box2D world, an emulator) makes the env state unsaveable, and resume then
# starts fresh episodes instead.
_STATIC = (gym.Space, gym.envs.registration.EnvSpec, enum.Enum, type(lambda: 0), io.IOBase)
_STATIC_NAMES = {"metadata", "_metadata", "spec", "_cached_spec", "render_mode", "env_fns", "_env_fns",
                 "env", "envs", "_env", "_action_space", "_observation_space", "single_observation_space",
                 "single_action_space", "observation_space", "action_space", "_np_random_seed"}


def _object_state(obj) -> dict:
    out = {}
    for name, value in vars(obj).items():
        if name in _STATIC_NAMES or isinstance(value, _STATIC) or callable(value):
            continue
        out[name] = encode(value)
    return out


def _chain(env) -> list:
    """[outermost wrapper, ..., base env] for a gym.Env or a VectorEnv."""
    objs = [env]
    while isinstance(objs[-1], (gym.Wrapper, gym.vector.VectorWrapper)):
        objs.append(objs[-1].env)
    return objs


def env_state(envs) -> dict | None:
    """A snapshot of a vector env and all its sub-envs, or None if some state is not plain data."""
    try:
        outer = _chain(envs)
        vec = outer[-1]
        subs = [_chain(e) for e in getattr(vec, "envs", [])]
        if not subs:
            return None  # async or native vector envs keep their state out of reach
        return {"outer": [_object_state(o) for o in outer], "subs": [[_object_state(o) for o in c] for c in subs]}
    except _NotPlain:
        return None


def env_snapshot(envs, obs) -> dict:
    """What an agent's checkpoint needs to continue its envs exactly: their state and the current obs."""
    return {"env": env_state(envs), "obs": torch.as_tensor(obs)}


def set_env_state(envs, state: dict) -> None:
    outer = _chain(envs)
    subs = [_chain(e) for e in outer[-1].envs]
    for obj, attrs in zip(outer, state["outer"]):
        for name, value in attrs.items():
            setattr(obj, name, decode(value))
    for chain, chain_state in zip(subs, state["subs"]):
        for obj, attrs in zip(chain, chain_state):
            for name, value in attrs.items():
                setattr(obj, name, decode(value))


# ---------------------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> dict:
    """Load an rlsuite checkpoint safely (weights_only: plain tensors and containers, no code)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; train first, or point at a run directory that has checkpoints/last.pt")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, foreign pickle: all refused the same way
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UserError(f"{path} is corrupt or not an rlsuite checkpoint ({reason}); retrain or use another run") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an rlsuite checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return data


def read_run_config(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UserError(f"{path} is corrupt; it is not valid YAML") from None
    if not isinstance(data, dict) or "agent" not in data or "config" not in data:
        raise UserError(f"{path} is not an rlsuite run config")
    return data


def new_run_dir(out_root: Path, agent: str, env_id: str, seed: int, name: str | None = None) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_env = env_id.replace("/", "-").replace(":", "-")
    base = name or f"{agent}-{safe_env}-s{seed}-{stamp}-{secrets.token_hex(2)}"
    path = Path(out_root) / "runs" / base
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir()
    except FileExistsError:
        raise UserError(f"run directory {path} already exists; pick another name or use --resume") from None
    except OSError as e:
        raise UserError(f"cannot create a run directory under {out_root} ({e.strerror}); choose a writable --out") from None
    return path


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------
class Run:
    """Services for one training run. Use as a context manager around the agent's train()."""

    def __init__(self, directory: Path, agent: str, config, env_card: EnvCard, seed: int,
                 device: torch.device, *, implementation: str = "rlsuite", resume: bool = False,
                 stop_at: int | None = None, progress: bool = True, extra: dict | None = None,
                 columns: list[str] = METRIC_COLUMNS, total: int | None = None):
        self.dir = Path(directory)
        self.columns = list(columns)
        self.agent, self.config, self.env_card, self.seed = agent, config, env_card, seed
        self.device = device
        self.implementation = implementation
        self.stop_at = stop_at
        self.threshold = env_threshold(env_card) if env_card is not None else None
        self._stop_requested = False
        self._eval_seconds = 0.0
        self._wall_offset = 0.0
        self._metrics_rows = 0
        self._last_return: float | None = None
        self._last_eval: float | None = None
        self.restored: dict | None = None
        self.total_steps = total if total is not None else getattr(config, "total_steps", None)
        self.next_eval = getattr(config, "eval_every", None)
        self.next_checkpoint = getattr(config, "checkpoint_every", None)

        (self.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        metrics = self.dir / "metrics.csv"
        if resume:
            ckpt = load_checkpoint(self.dir / "checkpoints" / "last.pt")
            self.restored = ckpt
            eng = ckpt["engine"]
            self._wall_offset, self._metrics_rows = eng["wall_s"], eng["metrics_rows"]
            self.next_eval, self.next_checkpoint = eng["next_eval"], eng["next_checkpoint"]
            # Rows written after the checkpoint belong to the lost future: drop them.
            rows = csv_rows(metrics)[: self._metrics_rows] if metrics.exists() else []
            with open(metrics, "w", newline="") as f:
                writer = csv.DictWriter(f, self.columns)
                writer.writeheader()
                writer.writerows(rows)
        else:
            with open(metrics, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)
            self._write_config(extra or {})
        self._metrics_file = open(metrics, "a", newline="")
        self._metrics = csv.DictWriter(self._metrics_file, self.columns)
        from torch.utils.tensorboard import SummaryWriter

        start_step = self.restored["step"] if self.restored else 0
        self._start_step = start_step
        self.writer = SummaryWriter(str(self.dir), purge_step=start_step if resume else None)
        if not resume:
            table = "\n".join(f"|{k}|{v}|" for k, v in to_data(config).items())
            self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        self.mark("running", start_step)
        seed_everything(seed)
        torch.set_num_threads(getattr(config, "torch_threads", 1))
        self._progress = None
        self._progress_enabled = progress
        self._start = time.perf_counter()

    # -- config and status files --------------------------------------------------------------
    def _write_config(self, extra: dict) -> None:
        data = {"agent": self.agent, "env_id": self.env_card.id if self.env_card else None,
                "seed": self.seed, "device": str(self.device), "implementation": self.implementation,
                "config": to_data(self.config),
                "env_card": dataclasses.asdict(self.env_card) if self.env_card else None,
                "created": dt.datetime.now().isoformat(timespec="seconds"), "versions": versions(),
                "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), **extra}
        (self.dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    def mark(self, status: str, step: int, **extra) -> None:
        """status.json: running | interrupted | failed | complete."""
        _atomic_write_text(self.dir / "status.json", json.dumps({"status": status, "step": step, **extra}, indent=1))

    # -- context manager: Ctrl-C asks for a clean stop; a second Ctrl-C aborts ------------------
    def __enter__(self):
        self._old_handler = None
        try:
            self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread (e.g. inside a worker thread)
            pass
        if self._progress_enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._progress.start()
            done = self.restored["step"] if self.restored else 0
            self._task = self._progress.add_task(f"{self.agent} {self.env_card.id if self.env_card else ''}",
                                                 total=self.total_steps, completed=done, info="")
            self._next_refresh = 0.0
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
        if self._progress is not None:
            self._progress.stop()
        if exc_type is not None and not (self.dir / "summary.json").exists():
            self.mark("failed", -1, error=f"{exc_type.__name__}: {exc}")
        self._metrics_file.close()
        self.writer.close()
        return False

    def _on_sigint(self, signum, frame):
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

    def restore_envs(self, envs) -> np.ndarray:
        """On resume: put the envs back as checkpointed and return the obs to continue from; when
        their state was not saveable (Box2D, emulators), start fresh episodes instead."""
        state, step = self.restored["state"], self.restored["step"]
        if state.get("env") is not None:
            set_env_state(envs, state["env"])
            return state["obs"].numpy()
        obs, _ = envs.reset(seed=self.seed + step)
        return obs

    # -- clocks ---------------------------------------------------------------------------------
    def start_clock(self) -> None:
        """Call right before the training loop. Training time starts here, after setup (imports,
        networks, env creation), as SB3's learn() is timed after its model is built; and a resumed
        run gets its RNG streams back here, after setup has drawn its own initial weights."""
        if self.restored:
            set_rng_state(self.restored["rng"])
        self._start = time.perf_counter()
        self._eval_seconds = 0.0

    @contextlib.contextmanager
    def untimed(self):
        """A block whose time is not training time (evaluation, measurement)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._eval_seconds += time.perf_counter() - t0

    def wall(self) -> float:
        """Training wall-clock seconds so far, evaluation excluded (and across resumes)."""
        return self._wall_offset + time.perf_counter() - self._start - self._eval_seconds

    # -- logging --------------------------------------------------------------------------------
    def log_row(self, step: int, wall: float | None = None, **values) -> None:
        """One metrics.csv row; columns not given stay empty."""
        wall = self.wall() if wall is None else wall
        self._metrics.writerow({"step": step, "wall_s": f"{wall:.3f}",
                                **{k: repr(v) if isinstance(v, float) else v for k, v in values.items()}})
        self._metrics_rows += 1

    def log_episode(self, step: int, episode_return: float, length: int) -> None:
        self.log_row(step, episode_return=float(episode_return), episode_length=length)
        self._last_return = episode_return
        self.writer.add_scalar("charts/episodic_return", episode_return, step)
        self.writer.add_scalar("charts/episodic_length", length, step)

    def log_scalars(self, step: int, scalars: dict) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, float(value), step)

    def progress(self, step: int) -> None:
        if self._progress is None:
            return
        now = time.perf_counter()
        if now < self._next_refresh:
            return
        self._next_refresh = now + 0.25
        elapsed = self.wall() - self._wall_offset
        info = f"{(step - self._start_step) / elapsed:,.0f} steps/s" if elapsed > 0 else ""
        if self._last_return is not None:
            info += f"  return {self._last_return:.1f}"
        if self._last_eval is not None:
            info += f"  eval {self._last_eval:.1f}"
        self._progress.update(self._task, completed=step, info=info)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, step: int, act: Callable, episodes: int) -> np.ndarray:
        wall = self.wall()  # the training time at this point; the evaluation itself is excluded
        with self.untimed():
            returns = evaluate(act, self.env_card, episodes, self.seed + EVAL_SEED_OFFSET)
        self.log_row(step, wall, eval_mean=float(returns.mean()), eval_std=float(returns.std()))
        self._last_eval = float(returns.mean())
        self.writer.add_scalar("eval/mean_return", returns.mean(), step)
        self.writer.add_scalar("eval/std_return", returns.std(), step)
        return returns

    def maybe_evaluate(self, step: int, act: Callable) -> None:
        """Evaluate when `step` has passed the next evaluation point (PROTOCOL.md: every eval_every)."""
        if self.next_eval is not None and step >= self.next_eval:
            while self.next_eval <= step:
                self.next_eval += self.config.eval_every
            self.evaluate(step, act, self.config.eval_episodes)

    def flush(self) -> None:
        self._metrics_file.flush()
        self.writer.flush()

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_due(self, step: int) -> bool:
        return self.next_checkpoint is not None and step >= self.next_checkpoint

    def save_checkpoint(self, step: int, state: dict) -> Path:
        """Atomically write checkpoints/last.pt: `state` (the agent's) + engine counters + RNGs."""
        while self.next_checkpoint is not None and self.next_checkpoint <= step:
            self.next_checkpoint += self.config.checkpoint_every
        self._metrics_file.flush()
        self.writer.flush()
        data = {"format": CHECKPOINT_FORMAT, "agent": self.agent, "implementation": self.implementation,
                "env_id": self.env_card.id if self.env_card else None, "step": step, "state": state,
                "rng": rng_state(),
                "engine": {"wall_s": self.wall(), "metrics_rows": self._metrics_rows,
                           "next_eval": self.next_eval, "next_checkpoint": self.next_checkpoint}}
        path = self.dir / "checkpoints" / "last.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(data, tmp)
        os.replace(tmp, path)  # readers see the old or the new checkpoint, never half of one
        return path

    def after_iteration(self, step: int, act: Callable, snapshot: Callable[[], dict]) -> bool:
        """The services at the end of an agent's loop iteration: periodic evaluation, progress, a
        checkpoint when one is due. Returns True when the agent must stop (Ctrl-C or stop_at); it
        then calls finish(), which checkpoints."""
        self.maybe_evaluate(step, act)
        self.progress(step)
        if self.should_stop(step):
            return True
        if self.checkpoint_due(step):
            self.save_checkpoint(step, snapshot())
        return False

    # -- stopping -------------------------------------------------------------------------------
    def should_stop(self, step: int) -> bool:
        """True after Ctrl-C (or at `stop_at`): the agent then checkpoints and calls finish()."""
        return self._stop_requested or (self.stop_at is not None and step >= self.stop_at)

    def finish(self, step: int, act: Callable, state: dict) -> dict:
        """Checkpoint; then, if the budget was reached, the final evaluation and summary.json."""
        self.save_checkpoint(step, state)
        if self.total_steps is not None and step < self.total_steps:
            self.mark("interrupted", step)
            return {"status": "interrupted", "step": step, "run_dir": str(self.dir)}
        wall = self.wall()
        final = self.evaluate(step, act, self.config.final_eval_episodes)
        self._metrics_file.flush()
        evals = [r for r in csv_rows(self.dir / "metrics.csv") if r["eval_mean"]]
        summary = {
            "status": "complete", "agent": self.agent, "implementation": self.implementation,
            "env_id": self.env_card.id, "seed": self.seed, "steps": step, "wall_s": wall,
            "steps_per_s": step / wall if wall > 0 else None,
            "final_eval": {"mean": float(final.mean()), "std": float(final.std()),
                           "episodes": len(final), "returns": [float(r) for r in final]},
            **solve_stats(evals, float(final.mean()), self.threshold),
            "hardware": hardware(), "versions": versions(), "run_dir": str(self.dir),
        }
        _atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=1))
        self.mark("complete", step)
        return summary


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
