"""The workers of a study: local processes sharing its storage (the default), or Ray tasks on a cluster.
Each runs trials until the study has its --trials."""

import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

from rlsuite.core.child import child_env, module_command
from rlsuite.experiments.sweep import connect_ray
from rlsuite.tune import report as tune_report
from rlsuite.tune.study import TuneSettings, progress_printer, counts, load_settings, open_study, recover
from rlsuite.tune.trial import STOP, StudyInterrupted, TrialFailed, run_trial


def work(tune_dir: str | Path, n_trials: int, worker: int = 0, parallel: bool = False, on_trial=None,
         echo=print) -> int:
    """One worker: run trials against the shared study until --trials are done. Returns an exit code:
    0, or 130 / 143 when a signal stopped it (the trial it was running is retried on the next start)."""

    tune_dir = Path(tune_dir)
    torch.set_num_threads(1)
    settings = load_settings(tune_dir)
    study = open_study(settings, worker, n_trials, parallel)

    def hparams(study, trial):  # each finished trial shows in TensorBoard's HParams view at once

        try:
            tune_report.write_hparams(settings, tune_dir, [trial])
        except OSError:
            pass  # a full disk will end the next run in one line; the HParams entry is rewritten by `tune show`

    while True:
        c = counts(study)
        if c.waiting == 0 and c.done + c.running >= n_trials:
            return 0
        try:
            study.optimize(partial(run_trial, settings=settings, tune_dir=tune_dir, echo=echo), n_trials=1,
                           catch=(TrialFailed,), gc_after_trial=False, callbacks=[hparams])
        except StudyInterrupted as e:
            return e.exit_code
        except KeyboardInterrupt as e:  # Aborted (a second signal) carries its own code: 143 for SIGTERM
            return getattr(e, "exit_code", 130)
        if on_trial is not None:
            on_trial(study)
        if STOP.code:  # a signal arrived between trials
            return STOP.code


def _worker_main(argv: list[str]) -> None:
    """`python -m rlsuite.tune.study --worker TUNE_DIR N_TRIALS INDEX`: one local worker process."""
    tune_dir, n_trials, index = argv[0], int(argv[1]), int(argv[2])

    def stop(signum, frame):  # between runs: start nothing new; inside a run the engine's handler rules
        STOP.code = 143 if signum == signal.SIGTERM else 130

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.exit(work(tune_dir, n_trials, index, parallel=True, echo=lambda line: print(line, flush=True)))


def _mark_worker_trials_failed(study, storage, pid: int, why: str, interrupted: bool) -> None:
    """The RUNNING trial of a worker process that ended: failed (a crash), or interrupted (killed by a
    signal: retried with its values, its runs resuming)."""
    from optuna.trial import TrialState  # heavy; loaded only when tuning

    for t in study.get_trials(deepcopy=False):
        worker = t.user_attrs.get("worker") or {}
        if t.state == TrialState.RUNNING and worker.get("pid") == pid and worker.get("host") == socket.gethostname():
            storage.set_trial_user_attr(t._trial_id, "interrupted" if interrupted else "error", why)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    if interrupted:
        recover(study, storage)


def run_local(settings: TuneSettings, tune_dir: Path, n_trials: int, workers: int, echo) -> int:
    """`workers` local processes share the study; a progress line whenever the counts change. A worker
    that crashes fails its running trial and is replaced (up to `workers` times)."""
    study = open_study(settings, 0, n_trials)
    storage = study._storage
    show = progress_printer(settings, n_trials, echo)
    if workers == 1:  # in this process: simplest to debug, and Ctrl-C reaches the run directly
        return work(tune_dir, n_trials, 0, parallel=False, on_trial=show, echo=echo)
    logs = tune_dir / "workers"
    logs.mkdir(exist_ok=True)
    env = child_env()

    def start(index: int):
        log = open(logs / f"worker-{index}.log", "a")
        return subprocess.Popen(module_command("rlsuite.tune.workers", "--worker", str(tune_dir), str(n_trials),
                                                str(index)), stdout=log, stderr=subprocess.STDOUT, env=env), log

    procs = {i: start(i) for i in range(workers)}
    restarts, code, next_index = 0, 0, workers
    try:
        while procs:
            time.sleep(1.0)
            for i, (proc, log) in list(procs.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del procs[i]
                if rc in (130, 143, -signal.SIGINT, -signal.SIGTERM):
                    code = code or (rc if rc > 0 else 128 - rc)
                elif rc != 0:
                    why = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with code {rc}"
                    echo(f"worker {i} {why} (log: {logs / f'worker-{i}.log'})")
                    _mark_worker_trials_failed(study, storage, proc.pid, f"its worker process {why} "
                                               f"(log: {logs / f'worker-{i}.log'})", interrupted=rc < 0)
                    c = counts(study)
                    if restarts < workers and c.done + c.running < n_trials and not code:
                        restarts += 1
                        procs[next_index] = start(next_index)
                        next_index += 1
            show(study)
    except (KeyboardInterrupt, SystemExit) as e:
        code = 143 if isinstance(e, SystemExit) else 130
        for proc, _ in procs.values():  # Ctrl-C reached them too; SIGTERM may have reached this process only
            if code == 143 and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, log in procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return code


def run_ray(settings: TuneSettings, tune_dir: Path, n_trials: int, workers: int | None, address: str | None,
            echo) -> int:
    """Trials as Ray tasks: `workers` tasks each run the worker loop against the one storage, which every
    node must reach (a journal file on a shared filesystem, or an RDB URL via --storage)."""

    ray = connect_ray(address, workers)
    if workers is None:  # one worker per CPU of the cluster
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    echo(f"{workers} Ray workers")
    study = open_study(settings, 0, n_trials)
    code, show = 0, progress_printer(settings, n_trials, echo)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(work)
        pending = [task.remote(str(tune_dir), n_trials, i, True) for i in range(workers)]
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=2.0)
            for ref in done:
                try:
                    code = code or ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a dead task: its trial stays to be recovered
                    echo(f"a Ray worker died: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            show(study)
    except (KeyboardInterrupt, SystemExit) as e:
        code = 143 if isinstance(e, SystemExit) else 130
        for ref in pending:
            ray.cancel(ref)  # a KeyboardInterrupt in the task: its run checkpoints
        ray.wait(pending, num_returns=len(pending), timeout=120)
    finally:
        ray.shutdown()
    return code

# ---------------------------------------------------------------------------------------------
# The command


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker_main(sys.argv[2:])
