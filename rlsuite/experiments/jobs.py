"""Jobs in child processes, a few at a time: sweep's grid points and compare's SB3 seeds.

Each job is a fresh `python -m MODULE --job` process that reads its job as JSON on stdin and prints its result as
JSON on the last line of stdout, so a crash or a kill -9 there costs that job only, and no process outlives its
job (an idle worker cannot miss a signal or hold the pool open). Stopping (Ctrl-C, SIGTERM, an error) starts no
further job. A SIGTERM is passed on to the running ones, once, and each stops at a checkpoint; a Ctrl-C reached
them from the terminal already (a second signal would abort them), so it is not.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from rlsuite.core.child import child_env, module_command


@dataclass
class JobResult:
    value: object = None      # the job's JSON answer, when it gave one
    started: bool = True      # False: the pool was stopping before the job's turn came
    why: str = ""             # why there is no answer: "the run's process was killed by SIGKILL", ...
    output: str = ""          # the process's stdout and stderr, for a log

    @property
    def ok(self) -> bool:
        return self.started and not self.why


def stopped_by_terminal(exc: BaseException | None) -> bool:
    """A Ctrl-C from the terminal, which the children received too."""
    return isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and exc.code == 130)


class JobPool:
    """with JobPool("rlsuite.experiments.sweep", workers) as pool: pool.submit(job) -> Future[JobResult]."""

    def __init__(self, module: str, workers: int):
        self.module = module
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def submit(self, job: dict) -> Future:
        return self._executor.submit(self._run, job)

    def _run(self, job: dict) -> JobResult:
        env = child_env()
        with self._lock:
            if self._stopping.is_set():
                return JobResult(started=False, why="not started: stopped")
            proc = subprocess.Popen(module_command(self.module, "--job"), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            self._live.add(proc)
        try:
            out, err = proc.communicate(json.dumps(job))
        finally:
            with self._lock:
                self._live.discard(proc)
        lines = out.strip().splitlines()
        if proc.returncode == 0 and lines:
            try:
                return JobResult(value=json.loads(lines[-1]))
            except ValueError:
                pass
        why = (f"the run's process was killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"the run's process exited with code {proc.returncode}")
        return JobResult(why=why, output=out + err)

    def stop(self, pass_sigterm: bool) -> None:
        """No job starts from now on; with pass_sigterm the running ones get one SIGTERM."""
        with self._lock:
            self._stopping.set()
            running = list(self._live)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if pass_sigterm:
            for proc in running:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.stop(pass_sigterm=not stopped_by_terminal(exc))
        self._executor.shutdown(wait=True, cancel_futures=True)  # the running jobs end (at a checkpoint when stopped)
        return False


def job_main(run) -> None:
    """The child's side, for a module's `if __name__ == "__main__" and sys.argv[1:] == ["--job"]`: one job as JSON on
    stdin, run(job)'s result as the last stdout line."""
    job = json.loads(sys.stdin.read())
    print(json.dumps(run(job), default=str), flush=True)
