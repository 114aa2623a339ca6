"""The run engine: a toolbox every agent calls from its own loop.

A `Run` owns one run directory (laid out in rlsuite.run.rundir) while a process trains it and provides
the services around training: the directory lock, seeding, metrics.csv and TensorBoard, periodic
evaluation on a separate env, checkpoints (by steps and by wall-clock minutes) and exact resume,
progress, Ctrl-C and SIGTERM, the divergence and disk-error endings, and summary.json. The agent's
`train(config, run)` decides when to call them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import json
import random
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from rlsuite.config.schema import EnvCard, to_data
from rlsuite.core.errors import Aborted, UserError
from rlsuite.core.seeding import GLOBAL, SEEDING, Seeds
from rlsuite.core.stats import solve_stats
from rlsuite.envs.make import threshold as env_threshold
from rlsuite.envs import video
from rlsuite.learn.optim import Diverged
from rlsuite.run.checkpoint import (
    CHECKPOINT_FORMAT,
    NonFiniteCheckpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_env_state,
    set_rng_state,
)
from rlsuite.run.evaluation import evaluate_episodes
from rlsuite.run.tracking import open_tracker
from rlsuite.run.rundir import (
    METRIC_COLUMNS,
    RunLock,
    atomic_write_text,
    csv_rows,
    disk_error,
    float_path,
    hardware,
    read_run_config,
    truncate_metrics,
    versions,
    write_run_config,
    write_status,
)

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


def seeding_version(config_data: dict) -> int:
    """The seeding scheme of a run from its config.yaml: version 1 for runs recorded before `seeding` was."""
    version = config_data.get("seeding", 1)
    if version not in (1, SEEDING):
        raise UserError(f"config.yaml: seeding {version!r} is unknown (this rlsuite knows 1 and {SEEDING}); "
                        "upgrade rlsuite, or restore the run's config.yaml")
    return version


def seed_everything(seeds: Seeds) -> None:
    """Python's, numpy's and torch's global generators, from the run's seed (rlsuite.core.seeding)."""
    random.seed(seeds.python_seed())
    np.random.seed(seeds.python_seed())
    torch.manual_seed(seeds.torch_seed(GLOBAL))


def _quiet_writer_errors(fallback):
    def hook(args):
        if issubclass(args.exc_type, OSError) and "tensorboard" in type(args.thread).__module__:
            return
        fallback(args)

    return hook


# ---------------------------------------------------------------------------------------------
STOP_SIGNALS = {signal.SIGINT: ("SIGINT", 130), signal.SIGTERM: ("SIGTERM", 143)}  # name, exit code 128+n
PROGRESS_LINE_SECONDS = 30.0  # plain progress lines when stderr is not a terminal (CI, nohup, schedulers)
STATUS_SECONDS = 2.0  # how often status.json carries a training run's progress, for watchers in any process
NOT_LEARNED = ("buffer", "nstep", "episodes", "obs", "env", "keys")  # snapshot parts that are data, not weights


class Run:
    """Services for one training run. Use as a context manager around the agent's train()."""

    def __init__(self, directory: Path, agent: str, config, env_card: EnvCard, seed: int,
                 device: torch.device, *, implementation: str = "rlsuite", resume: bool = False,
                 stop_at: int | None = None, progress: bool = True, extra: dict | None = None,
                 columns: list[str] = METRIC_COLUMNS, total: int | None = None, lock: RunLock | None = None,
                 on_eval: Callable[[int, float], bool] | None = None):
        self.dir = Path(directory)
        # Called after each periodic evaluation with (step, mean return); returning True stops the run
        # as a signal would (a checkpoint, status interrupted): how a tuner prunes a trial mid-run.
        self.on_eval = on_eval
        self.stop_reason: str | None = None
        self.lock = lock if lock is not None and lock.held else RunLock(self.dir).acquire()
        try:
            self._open(agent, config, env_card, seed, device, implementation, resume, stop_at, progress,
                       extra or {}, columns, total)
        except OSError as e:
            self.lock.release()
            raise disk_error(e, f"the run directory {self.dir}", "choose a writable --out or free space") from None
        except BaseException:
            self.lock.release()
            raise

    def _open(self, agent, config, env_card, seed, device, implementation, resume, stop_at, progress, extra,
              columns, total):
        self.columns = list(columns)
        self.agent, self.config, self.env_card, self.seed = agent, config, env_card, seed
        self.device = device
        self.implementation = implementation
        self.stop_at = stop_at
        self.threshold = env_threshold(env_card) if env_card is not None else None
        self.stop_signal: str | None = None
        self._eval_seconds = 0.0
        self._wall_offset = 0.0
        self._eval_cpu, self._cpu_offset, self._cpu_start = 0.0, 0.0, time.process_time()
        self.cpu_share = 1.0  # 1/N for a member of a population of N: its share of the process's CPU time
        self._metrics_rows = 0
        self._last_return: float | None = None
        self._last_eval: float | None = None
        self.restored: dict | None = None
        self.resumed_at: list[int] = []
        self._filming_failed = False
        self.envs_restarted = False
        self.last_checkpoint_step: int | None = None
        self.total_steps = total if total is not None else getattr(config, "total_steps", None)
        self.next_eval = getattr(config, "eval_every", None)
        self.next_checkpoint = getattr(config, "checkpoint_every", None)
        minutes = getattr(config, "checkpoint_minutes", None)
        self._checkpoint_seconds = 60.0 * minutes if minutes else None

        (self.dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        metrics = self.dir / "metrics.csv"
        if resume:
            path = self.dir / "checkpoints" / "last.pt"
            ckpt = load_checkpoint(path)
            made_by = (ckpt.get("agent"), ckpt.get("implementation", "rlsuite"))
            if made_by != (agent, implementation) or not isinstance(ckpt.get("engine"), dict):
                raise UserError(f"{path} holds a {made_by[1]} {made_by[0]} checkpoint, but {self.dir}/config.yaml "
                                f"describes a {implementation} {agent} run; the directory was mixed up, start a new run")
            self.restored = ckpt
            eng = ckpt["engine"]
            self._wall_offset, self._metrics_rows = eng["wall_s"], eng["metrics_rows"]
            self._cpu_offset = eng.get("cpu_s")  # None: checkpointed before CPU time was kept, so unknown
            self.next_eval = eng["next_eval"]
            if self.next_checkpoint is not None:
                self.next_checkpoint = eng["next_checkpoint"] or ckpt["step"] + self.next_checkpoint
            self.last_checkpoint_step = ckpt["step"]
            # Rows written after the checkpoint belong to the future the resume replays: drop them, by
            # writing a new file and renaming it (a kill mid-way leaves the old file whole).
            truncate_metrics(metrics, self._metrics_rows, self.columns, max_step=ckpt["step"])
            # Where the run was resumed, for its summary: reports mark such runs (SB3's resumes are not exact).
            data = read_run_config(self.dir)
            data["resumed_at"] = [*data.get("resumed_at", []), ckpt["step"]]
            self.seeds = Seeds(seed, seeding_version(data))  # the scheme the run started with
            tracking_id = data.setdefault("tracking_id", secrets.token_hex(8))
            write_run_config(self.dir, data)
            self.resumed_at = data["resumed_at"]
        else:
            with open(metrics, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)
            # a new id for every new run, even one redone in the same directory: its tracker run is its own
            tracking_id = secrets.token_hex(8)
            self.seeds = Seeds(seed)
            self._write_config({**(extra or {}), "tracking_id": tracking_id, "seeding": SEEDING})
        self._metrics_file = open(metrics, "a", newline="")
        self._metrics = csv.DictWriter(self._metrics_file, self.columns)

        start_step = self.restored["step"] if self.restored else 0
        self._start_step = start_step
        # On resume, events after the checkpoint step are the lost future; those at it are kept.
        self.writer = SummaryWriter(str(self.dir), purge_step=start_step + 1 if resume else None)
        if not resume:
            table = "\n".join(f"|{k}|{v}|" for k, v in to_data(config).items())
            self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
            self._write_hparams(config, ((extra or {}).get("baseline") or {}).get("hyperparameters") or {})
        self.tracker = open_tracker(self.dir, self.dir.name, tracking_id, {"agent": agent, "implementation": implementation,
                                                               "env_id": env_card.id if env_card else None,
                                                               "seed": seed, **to_data(config)})
        self.mark("running", start_step)
        seed_everything(self.seeds)
        torch.set_num_threads(getattr(config, "torch_threads", 1))
        self._progress = None
        self._progress_mode = ("bar" if sys.stderr.isatty() else "lines") if progress else None
        self._next_line = 0.0
        self._next_status = time.perf_counter() + STATUS_SECONDS
        self._start = time.perf_counter()
        self._next_checkpoint_time = time.monotonic() + (self._checkpoint_seconds or 0.0)

    # -- config and status files --------------------------------------------------------------
    def _write_config(self, extra: dict) -> None:
        data = {"agent": self.agent, "env_id": self.env_card.id if self.env_card else None,
                "seed": self.seed, "device": str(self.device), "implementation": self.implementation,
                "config": to_data(self.config),
                "env_card": dataclasses.asdict(self.env_card) if self.env_card else None,
                "created": dt.datetime.now().isoformat(timespec="seconds"), "versions": versions(),
                "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), **extra}
        write_run_config(self.dir, data)

    # -- TensorBoard's HParams view: the run's hyperparameters, and the final results as its metrics ----------
    def _hparam_metrics(self) -> tuple[str, ...]:
        return ("final/test_acc", "eval/test_acc") if self.agent == "supervised" else ("final/eval_mean", "eval/mean_return")

    def _write_hparams(self, config, library_values: dict) -> None:
        """The HParams plugin's experiment and session-start records in this run's own event file (not the extra
        sub-run SummaryWriter.add_hparams makes): every hyperparameter (an SB3 run's own, `library_values`, too),
        plus agent, implementation, env and seed; lists and schedules as text."""
        values = {"agent": self.agent, "implementation": self.implementation,
                  "env_id": self.env_card.id if self.env_card else "-", "seed": self.seed}
        for key, value in {**to_data(config), **library_values}.items():
            values[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
        experiment, start, _ = hparams(values, {name: 0.0 for name in self._hparam_metrics()})
        for record in (experiment, start):
            self.writer.file_writer.add_summary(record)

    def write_final_metric(self, step: int, value: float) -> None:
        """The final result under the HParams metric's tag, and the session's end (status success)."""
        self.writer.add_scalar(self._hparam_metrics()[0], float(value), step)
        if self.tracker:
            self.tracker.log(step, {self._hparam_metrics()[0]: value})
        self.writer.file_writer.add_summary(hparams({"agent": self.agent}, {})[2])
        self.writer.flush()

    def mark_failed(self, error: str, step: int | None = None) -> None:
        """status failed at STEP (where it failed; the last checkpoint's when unknown), with the checkpoint's step
        that a resume would start from."""
        checkpoint = self.last_checkpoint_step or 0
        self.mark("failed", checkpoint if step is None else step, error=error, checkpoint_step=checkpoint)

    def mark(self, status: str, step: int, **extra) -> None:
        """status.json: running | interrupted | failed | complete."""
        write_status(self.dir, status, step, **extra)

    def last_good(self) -> str:
        """Where the run can be resumed from, for messages that end a run."""
        if self.last_checkpoint_step is None:
            return "no checkpoint was written yet (nothing to resume)"
        return f"the last good checkpoint is {self.dir / 'checkpoints' / 'last.pt'} (step {self.last_checkpoint_step:,})"

    # -- context manager: Ctrl-C or SIGTERM asks for a clean stop; a second one aborts ---------------
    def __enter__(self):
        # TensorBoard writes from a thread; when the disk fills up it prints a traceback there and re-raises
        # the error in this thread on the next write, where the run ends in one line. Keep the first quiet.
        self._old_excepthook = threading.excepthook
        threading.excepthook = _quiet_writer_errors(self._old_excepthook)
        self._old_handlers = {}
        for signum in STOP_SIGNALS:
            try:
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread (e.g. inside a worker thread)
                pass
        if self._progress_mode == "bar":
            self._progress = Progress(TextColumn("[bold]{task.description}"), MofNCompleteColumn(), BarColumn(bar_width=20),
                                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._progress.start()
            done = self.restored["step"] if self.restored else 0
            self._task = self._progress.add_task(self._title(), total=self.total_steps, completed=done, info="")
            self._next_refresh = 0.0
        return self

    def __exit__(self, exc_type, exc, tb):
        threading.excepthook = self._old_excepthook
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        if self._progress is not None:
            self._progress.stop()
        with contextlib.suppress(OSError):
            self._metrics_file.close()
        with contextlib.suppress(OSError):
            self.writer.close()
        try:
            if getattr(self, "tracker", None):
                with contextlib.suppress(Exception):  # the tracker's upload failing never costs the run its ending
                    self.tracker.finish()
            if exc_type is None or (self.dir / "summary.json").exists():
                return False
            if issubclass(exc_type, KeyboardInterrupt):  # a second Ctrl-C: abort, keep the last checkpoint
                with contextlib.suppress(OSError):
                    self.mark("interrupted", self.last_checkpoint_step or 0, note="aborted by a second signal")
                return False
            error = str(exc) if isinstance(exc, UserError) else f"{exc_type.__name__}: {exc}"
            with contextlib.suppress(OSError):  # a full disk may refuse this too; the lock still goes
                self.mark_failed(error.splitlines()[0] if error else "", getattr(exc, "step", None))
            if isinstance(exc, OSError):  # a write failed mid-run: one line instead of a traceback chain
                raise disk_error(exc, f"to {self.dir}", f"training stopped, {self.last_good()}; free space or fix "
                                 f"permissions, then `rlsuite train --resume {self.dir}`") from None
            return False
        finally:
            self.lock.release()

    def _on_signal(self, signum, frame):
        if self.stop_signal is not None:
            raise Aborted(*STOP_SIGNALS[signum], [self.dir])
        self.stop_signal = STOP_SIGNALS[signum][0]

    def restore_envs(self, envs) -> np.ndarray:
        """On resume: put the envs back as checkpointed and return the obs to continue from; when
        their state was not saveable (Box2D, emulators), start fresh episodes instead."""
        state, step = self.restored["state"], self.restored["step"]
        if state.get("env") is not None:
            set_env_state(envs, state["env"])
            self.envs_restarted = False
            return state["obs"].numpy()
        obs, _ = envs.reset(seed=self.seeds.train_envs(envs.num_envs, restart=step))
        self.envs_restarted = True  # the agent must drop what it kept of the episodes that were running
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
        self._cpu_start, self._eval_cpu = time.process_time(), 0.0

    @contextlib.contextmanager
    def untimed(self):
        """A block whose time is not training time (evaluation, measurement)."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._eval_seconds += time.perf_counter() - t0
            self._eval_cpu += time.process_time() - c0

    def wall(self) -> float:
        """Training wall-clock seconds so far, evaluation excluded (and across resumes)."""
        return self._wall_offset + time.perf_counter() - self._start - self._eval_seconds

    def cpu(self) -> float | None:
        """Training CPU seconds of this process so far, evaluation excluded (and across resumes); None when
        a resumed checkpoint did not keep them. Unlike wall(), other load on a shared machine does not inflate
        it, so ratios of two implementations stay fair. Worker processes of an async vector env are not in it
        (EnvPool's threads are: they belong to this process)."""
        if self._cpu_offset is None:
            return None
        return self._cpu_offset + (time.process_time() - self._cpu_start - self._eval_cpu) * self.cpu_share

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
        if self.tracker:
            self.tracker.log(step, {"charts/episodic_return": episode_return, "charts/episodic_length": length})

    def log_scalars(self, step: int, scalars: dict) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, float(value), step)
        if self.tracker:
            self.tracker.log(step, scalars)

    def _title(self) -> str:
        return f"{self.agent} {self.env_card.id if self.env_card else ''}".strip()

    def progress(self, step: int) -> None:
        """A live bar on a terminal; elsewhere a plain line every PROGRESS_LINE_SECONDS. Whatever the mode,
        status.json carries the run's step, rate and latest returns every STATUS_SECONDS (what `compare`,
        `sweep` and populations show for the runs they watch)."""
        now = time.perf_counter()
        if now >= self._next_status:
            self._next_status = now + STATUS_SECONDS
            self._publish(step)
        if self._progress_mode is None:
            return
        if self._progress_mode == "bar" and now < self._next_refresh:
            return
        if self._progress_mode == "lines" and now < self._next_line:
            return
        elapsed = self.wall() - self._wall_offset
        unit = "epoch" if self.agent == "supervised" else "step"  # a classifier's progress counts epochs
        rate = (step - self._start_step) / elapsed if elapsed > 0 else None
        info = "" if rate is None else f"{rate:,.0f} {unit}s/s" if rate >= 1 else f"{1 / rate:,.1f} s/{unit}" if rate else ""
        if self._last_return is not None:
            info += f"  return {self._last_return:.1f}"
        if self._last_eval is not None:
            info += f"  eval {self._last_eval:.1f}"
        if self._progress_mode == "bar":
            self._next_refresh = now + 0.25
            self._progress.update(self._task, completed=step, info=info)
            return
        if self._next_line:  # not at the very start: there is nothing to say yet
            total = f"/{self.total_steps:,} ({100 * step / self.total_steps:.0f}%)" if self.total_steps else ""
            print(f"[{self._title()}] {unit} {step:,}{total}  {info}", file=sys.stderr, flush=True)
        self._next_line = now + PROGRESS_LINE_SECONDS

    def _publish(self, step: int) -> None:
        elapsed = self.wall() - self._wall_offset
        live = {"total": self.total_steps, "steps_per_s": (step - self._start_step) / elapsed if elapsed > 0 else None,
                "last_return": self._last_return, "last_eval": self._last_eval, "updated": time.time()}
        with contextlib.suppress(OSError):  # a heartbeat; a full disk ends the run where it writes what matters
            self.mark("running", step, **{k: v for k, v in live.items() if v is not None})

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, step: int, act: Callable, episodes: int) -> np.ndarray:
        wall = self.wall()  # the training time at this point; the evaluation itself is excluded
        with self.untimed():
            returns, self.last_eval_cut = evaluate_episodes(act, self.env_card, episodes, self.seeds.eval_envs(episodes))
        self.log_row(step, wall, eval_mean=float(returns.mean()), eval_std=float(returns.std()))
        self._last_eval = float(returns.mean())
        self.writer.add_scalar("eval/mean_return", returns.mean(), step)
        self.writer.add_scalar("eval/std_return", returns.std(), step)
        if self.tracker:
            self.tracker.log(step, {"eval/mean_return": returns.mean(), "eval/std_return": returns.std()})
        return returns

    def maybe_evaluate(self, step: int, act: Callable) -> None:
        """Evaluate when `step` has passed the next evaluation point (docs/protocol.md: every eval_every)."""
        if self.next_eval is not None and step >= self.next_eval:
            point = self.next_eval  # the evaluation's place in the schedule: the same after a resume
            while self.next_eval <= step:
                self.next_eval += self.config.eval_every
            returns = self.evaluate(step, act, self.config.eval_episodes)
            # Film when any evaluation point passed here is every N-th (a PPO rollout may pass several at once).
            every, first, last = getattr(self.config, "video_every", None), point // self.config.eval_every, \
                (self.next_eval - self.config.eval_every) // self.config.eval_every
            if every and last // every > (first - 1) // every:
                self.film(step, act)
            if self.on_eval is not None and self.on_eval(step, float(returns.mean())):
                self.stop_reason = "pruned"

    def film(self, step: int, act: Callable) -> None:
        """One greedy episode into RUN/videos (video_every). Filming was checked before the run started; if it
        fails later (a disk, a renderer), training goes on without videos after one line saying so."""
        if self._filming_failed:
            return

        with self.untimed():
            try:
                video.record_episodes(act, self.env_card, self.dir / "videos", 1, self.seeds.eval_envs(1), f"step{step}")
            except Exception as e:  # noqa: BLE001 - writers and renderers fail in their own ways; training goes on
                self._filming_failed = True
                why = (str(e).splitlines() or [type(e).__name__])[0]
                print(f"[{self._title()}] no more videos in this run: {why}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        self._metrics_file.flush()
        self.writer.flush()

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_due(self, step: int) -> bool:
        """Every checkpoint_every steps when set, and every checkpoint_minutes of wall-clock time, so
        that a kill loses minutes of work whatever the budget."""
        if self.next_checkpoint is not None and step >= self.next_checkpoint:
            return True
        return self._checkpoint_seconds is not None and time.monotonic() >= self._next_checkpoint_time

    def save_checkpoint(self, step: int, state: dict) -> Path:
        """Atomically write checkpoints/last.pt: `state` (the agent's) + engine counters + RNGs. Weights
        that are not finite are never written: the run stops as diverged and the last good one stays."""
        every = getattr(self.config, "checkpoint_every", None)
        while every and self.next_checkpoint is not None and self.next_checkpoint <= step:
            self.next_checkpoint += every
        if self._checkpoint_seconds is not None:
            self._next_checkpoint_time = time.monotonic() + self._checkpoint_seconds
        self._metrics_file.flush()
        self.writer.flush()
        data = {"format": CHECKPOINT_FORMAT, "agent": self.agent, "implementation": self.implementation,
                "env_id": self.env_card.id if self.env_card else None, "step": step, "state": state,
                "rng": rng_state(),
                "engine": {"wall_s": self.wall(), "cpu_s": self.cpu(), "metrics_rows": self._metrics_rows,
                           "next_eval": self.next_eval, "next_checkpoint": self.next_checkpoint}}
        path = self.dir / "checkpoints" / "last.pt"
        learned = {k: v for k, v in state.items() if k not in NOT_LEARNED}
        try:
            save_checkpoint(path, data, check=learned)
        except NonFiniteCheckpoint as e:
            raise Diverged(step=step, message=f"{self.agent} diverged: {e} at step {step:,}; the checkpoint was not written, training "
                           f"stopped, {self.last_good()}; lower lr, or enable gradient clipping / normalisation") from None
        self.last_checkpoint_step = step
        size = path.stat().st_size
        if size > 2**30 and not getattr(self, "_told_checkpoint_size", False):  # say it once: big writes take time
            self._told_checkpoint_size = True
            print(f"[{self._title()}] checkpoints are {size / 2**30:.1f} GiB (the replay memory is in them; "
                  "--set save_buffer=false leaves it out, and a resume then refills it)", file=sys.stderr, flush=True)
        return path

    def after_iteration(self, step: int, act: Callable, snapshot: Callable[[], dict]) -> bool:
        """The services at the end of an agent's loop iteration: periodic evaluation, progress, a
        checkpoint when one is due. Returns True when the agent must stop (a signal or stop_at); it
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
        """True after Ctrl-C / SIGTERM (or at `stop_at`): the agent then checkpoints and calls finish()."""
        return (self.stop_signal is not None or self.stop_reason is not None
                or (self.stop_at is not None and step >= self.stop_at))

    def finish(self, step: int, act: Callable, state: dict | None) -> dict:
        """Checkpoint (state None: the caller just saved it); then, if the budget was reached, the final
        evaluation and summary.json."""
        if state is not None:
            self.save_checkpoint(step, state)
        if self.total_steps is not None and step < self.total_steps:
            self.mark("interrupted", step, signal=self.stop_signal, **({"reason": self.stop_reason} if self.stop_reason else {}))
            return {"status": "interrupted", "step": step, "run_dir": str(self.dir), "signal": self.stop_signal,
                    "reason": self.stop_reason,
                    "exit_code": STOP_SIGNALS[getattr(signal, self.stop_signal)][1] if self.stop_signal else 0}
        wall, cpu = self.wall(), self.cpu()
        final = self.evaluate(step, act, self.config.final_eval_episodes)
        self._metrics_file.flush()
        evals = [r for r in csv_rows(self.dir / "metrics.csv") if r["eval_mean"]]
        summary = {
            "status": "complete", "agent": self.agent, "implementation": self.implementation,
            "env_id": self.env_card.id, "seed": self.seed, "steps": step, "wall_s": wall,
            "steps_per_s": step / wall if wall > 0 else None,
            "cpu_s": cpu, "steps_per_cpu_s": step / cpu if cpu else None,
            "final_eval": {"mean": float(final.mean()), "std": float(final.std()),
                           "episodes": len(final), "returns": [float(r) for r in final],
                           "cut_at_max_steps": self.last_eval_cut,
                           "deterministic": getattr(self.config, "eval_deterministic", True)},
            **solve_stats(evals, float(final.mean()), self.threshold),
            "max_return": getattr(self.env_card, "max_return", None), "resumed_at": self.resumed_at,
            "hardware": hardware(), "float_path": float_path(), "versions": versions(), "run_dir": str(self.dir),
        }
        self.write_final_metric(step, final.mean())
        atomic_write_text(self.dir / "summary.json", json.dumps(summary, indent=1))
        self.mark("complete", step)
        return summary
