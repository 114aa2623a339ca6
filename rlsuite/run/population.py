"""A population: N runs of one agent and config (the members, one per seed) trained together in one process.

An agent that supports populations trains its members' networks as one stacked network (nets.stack_members)
on one vector env whose sub-envs m*E .. m*E+E-1 belong to member m. Each member keeps its own `Run`: its
run directory in the usual format (config, metrics.csv, TensorBoard, checkpoints, status, summary), its
evaluations and its checkpoints, so everything that reads a run reads a member. `Population` provides the
services around the members' runs:

- one Ctrl-C or SIGTERM stops every member cleanly (each checkpoints; a second one aborts all);
- a member that diverges stops alone: its one line, status failed, its last good checkpoint kept; the others
  train on;
- every member's clock leaves out all evaluation time, its own and the other members'; each member's CPU
  time is its share (1/N) of the process's;
- a member's checkpoint holds its own slice of everything (weights, optimiser moments, statistics, RNG
  streams, its envs), in the form a single run's has: eval, load and resume read it as a single run.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Callable

import numpy as np
import torch

from rlsuite.core.errors import Aborted, UserError
from rlsuite.envs.envpool import EnvPoolVectorEnv
from rlsuite.learn.optim import Diverged
from rlsuite.run.checkpoint import env_snapshot, set_env_state
from rlsuite.run.engine import STOP_SIGNALS, Run


class Population:
    """Services over the members' runs (already entered by the caller). Use as a context manager."""

    def __init__(self, runs: list[Run]):
        if not runs:
            raise UserError("a population needs at least one member")
        self.runs = runs
        self.size = len(runs)
        self.device = runs[0].device
        self.seeds = [run.seed for run in runs]
        self.alive = [True] * self.size
        self.results: list[dict | None] = [None] * self.size
        self.envs_restarted = False
        for run in runs:
            run.cpu_share = 1.0 / self.size

    def __enter__(self):
        self._old = {}
        if self.size > 1:  # one signal stops every member; each member's Run would only stop itself
            for signum in STOP_SIGNALS:
                try:
                    self._old[signum] = signal.signal(signum, self._on_signal)
                except ValueError:  # not the main thread
                    pass
        return self

    def __exit__(self, *exc):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        return False

    def _on_signal(self, signum, frame):
        if any(run.stop_signal for run in self.runs):
            raise Aborted(*STOP_SIGNALS[signum], [run.dir for run in self.runs])
        for run in self.runs:
            run.stop_signal = STOP_SIGNALS[signum][0]

    # -- the members' envs -------------------------------------------------------------------------
    def env_seeds(self, num_envs: int, restart: int = 0) -> list[int]:
        """The seeds of the members' sub-envs, member by member: each member's are its own run's
        (rlsuite.core.seeding), as a single run with that seed would seed its vector env."""
        return [s for run in self.runs for s in run.seeds.train_envs(num_envs, restart)]

    def reset_envs(self, envs, num_envs: int) -> np.ndarray:
        """The first observations; on a resume, the members' envs as checkpointed (or fresh episodes where an
        env's state could not be saved: `envs_restarted`, and the agent drops what it kept of them)."""
        if self.size > 1 and isinstance(envs, EnvPoolVectorEnv):
            raise UserError("EnvPool seeds all its envs from one seed, so it cannot give each member its own; "
                            "train these seeds one at a time, or set vectorization: async in the env card")
        restored = [run.restored for run in self.runs]
        first = envs.reset(seed=self.env_seeds(num_envs))[0]  # also on a resume: wrappers expect a reset first
        if not any(restored):
            return first
        if not all(restored) or len({r["step"] for r in restored}) > 1:
            raise UserError("the members of a population resume together from checkpoints at one step; "
                            f"these are at steps {[r['step'] if r else None for r in restored]}: resume them one by one")
        states = [r["state"] for r in restored]
        if all(isinstance(s.get("env"), dict) and "own" in s["env"] for s in states) and hasattr(envs, "load_state_dict"):
            envs.load_state_dict(_concat_env_states([s["env"]["own"] for s in states]))
            return np.concatenate([s["obs"].numpy() for s in states])
        if self.size == 1 and states[0].get("env") is not None:
            set_env_state(envs, states[0]["env"])
            return states[0]["obs"].numpy()
        self.envs_restarted = True
        for run in self.runs:
            run.envs_restarted = True
        return envs.reset(seed=self.env_seeds(num_envs, restart=restored[0]["step"]))[0]

    def env_snapshot(self, envs, obs: np.ndarray, member: int, num_envs: int) -> dict:
        """Member `member`'s envs and current observations, as a single run's checkpoint holds them."""
        rows = slice(member * num_envs, (member + 1) * num_envs)
        if self.size == 1:
            return env_snapshot(envs, obs)
        if hasattr(envs, "state_dict"):  # the torch backend's envs: each member's rows
            return {"env": {"own": envs.state_dict(rows)}, "obs": _tensor(obs[rows])}
        return {"env": None, "obs": _tensor(obs[rows])}  # a gymnasium vector env's sub-envs: fresh episodes on resume

    def log_episodes(self, step: int, episodes, num_envs: int) -> None:
        """(sub-env index, return, length) of ended episodes, each logged in its member's run."""
        for index, episode_return, length in episodes:
            member = index // num_envs
            if self.alive[member]:
                self.runs[member].log_episode(step, episode_return, length)

    # -- divergence --------------------------------------------------------------------------------
    def fail(self, member: int, what: str, fix: str, step: int | None = None) -> None:
        """Member `member` stops: "WHAT; training stopped, <its last good checkpoint>; FIX". Alone (a single run,
        or the last live member) that is a Diverged error, which ends the run as a single run's divergence does;
        in a population the member stops alone: its line on stderr, status failed, and the others train on."""
        run = self.runs[member]
        self.alive[member] = False
        line = f"{what}; training stopped, {run.last_good()}; {fix}"
        if self.size == 1:
            raise Diverged(line, step)  # a single run's divergence: its Run marks it failed, the command prints the line
        print(f"[{run.dir.name}] {line}", file=sys.stderr, flush=True)
        run.mark_failed(line, step)
        self.results[member] = {"status": "failed", "error": line, "run_dir": str(run.dir), "seed": run.seed,
                                "exit_code": 1}

    def failed(self) -> list[int]:
        """The members that stopped (diverged) while the others train on."""
        return [m for m in range(self.size) if not self.alive[m]]

    def diverged(self, members: list[int], what: str, step: int, reason: str) -> None:
        """The members whose losses or gradients stopped being numbers (MemberDivergenceGuard) stop. (When none
        is left, after_iteration ends the loop and finish returns their failures.)"""
        for m in members:
            if self.alive[m]:
                self.fail(m, f"{what} diverged: {reason} (step {step:,})",
                          "lower lr, or enable gradient clipping / normalisation", step)

    # -- the end of each iteration -----------------------------------------------------------------
    def _timed_for_others(self, member: int, fn: Callable):
        """Run fn (member's evaluation) and leave its time out of every other member's clock too."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn()
        finally:
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            for m, run in enumerate(self.runs):
                if m != member:
                    run._eval_seconds += wall
                    run._eval_cpu += cpu

    def after_iteration(self, step: int, act_of: Callable[[int], Callable], snapshot_of: Callable[[int], dict]) -> bool:
        """Run.after_iteration for every live member: evaluation when due (act_of(m) is built only then),
        progress, checkpoints. True when the population must stop (a signal, stop_at, or a pruned member)."""
        for m, run in enumerate(self.runs):
            if not self.alive[m]:
                continue
            if run.next_eval is not None and step >= run.next_eval:
                self._timed_for_others(m, lambda: run.maybe_evaluate(step, act_of(m)))
        for m, run in enumerate(self.runs):  # the display (if any) and every member's status.json heartbeat
            if self.alive[m]:
                run.progress(step)
        reason = next((run.stop_reason for run in self.runs if run.stop_reason), None)
        if reason is not None:  # e.g. a tuner pruned the trial: every member stops for it
            for run in self.runs:
                run.stop_reason = reason
        if not any(self.alive) or any(run.should_stop(step) for m, run in enumerate(self.runs) if self.alive[m]):
            return True
        # every live member checkpoints at the same step (their clocks would drift apart otherwise), so that
        # after a kill they resume together
        if any(run.checkpoint_due(step) for m, run in enumerate(self.runs) if self.alive[m]):
            for m in range(self.size):
                if self.alive[m]:
                    self.save(m, step, snapshot_of(m))
        return False

    def save(self, member: int, step: int, state: dict) -> None:
        try:
            self.runs[member].save_checkpoint(step, state)
        except Diverged as e:  # weights that are not finite are never written: this member stops
            if self.size == 1:
                raise
            what = str(e).split("; the checkpoint was not written")[0] + "; the checkpoint was not written"
            self.fail(member, what, "lower lr, or enable gradient clipping / normalisation", step)

    def finish(self, step: int, act_of: Callable[[int], Callable], snapshot_of: Callable[[int], dict]) -> list[dict]:
        """Run.finish for every live member; the failed ones keep their failure. Returns one result per member."""
        for m, run in enumerate(self.runs):
            if not self.alive[m]:
                continue
            self.save(m, step, snapshot_of(m))
            if self.alive[m]:
                self.results[m] = self._timed_for_others(m, lambda: run.finish(step, act_of(m), None))
        return self.results


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x))


def _concat_env_states(states: list[dict]) -> dict:
    return {key: (torch.cat([s[key] for s in states]) if torch.is_tensor(states[0][key])
                  else [v for s in states for v in s[key]]) for key in states[0]}
