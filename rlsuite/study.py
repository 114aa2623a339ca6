"""`rlsuite tune`: hyperparameter search with Optuna over ordinary rlsuite runs.

A study lives in one tune directory, OUT/tune/<agent>-<env>:

    tune.json        what is tuned: agent, env, search space, seeds, budget, fixed fields, objective
    study.journal    the Optuna study (or the SQLite / RDB storage named by --storage)
    runs/            every trial's runs, ordinary run directories named <params-hash>-s<seed>
    workers/         one log per local worker process
    tensorboard/     one HParams entry per finished trial
    report.md, best.yaml, *.png   written by rlsuite.tune_report

A trial proposes values for the space's fields (TPE), trains one run per seed with them and scores the
runs with rlsuite.tuning.objective. Its periodic evaluations feed the pruner as they happen. Runs are
named by their parameters, so a trial interrupted by Ctrl-C, SIGTERM or a kill is retried on the next
invocation with the same values and its runs resume from their checkpoints. A trial whose run fails
(bad combination, divergence, crash) is recorded as failed with its one-line reason; the study goes on.
Workers are local processes sharing the storage (the default), or Ray tasks on a cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from rlsuite.errors import UserError
from rlsuite.rundir import disk_error

PRUNERS = ("median", "halving", "none")
MAX_TRIALS = 100_000


class _Stop:
    """Set by a worker's signal handler between runs; checked before each run starts."""

    code = 0


STOP = _Stop()


class TrialFailed(Exception):
    """A trial's run failed; Optuna records the trial as failed and the study goes on."""


class StudyInterrupted(Exception):
    """Ctrl-C or SIGTERM reached a trial's run: its checkpoint is written; the study stops and resumes."""

    def __init__(self, exit_code: int):
        super().__init__(f"interrupted (exit {exit_code})")
        self.exit_code = exit_code


@dataclass
class TuneSettings:
    """What a study tunes; stored in tune.json. A re-run must match it to continue the study."""

    agent: str
    env_id: str
    space: dict             # field -> distribution, as data (rlsuite.tuning.parse_space)
    seeds: list[int]
    steps: int              # each trial's budget per seed
    fixed: dict             # --set: the same value in every trial
    pruner: str
    sampler_seed: int
    threshold: float
    floor: float            # a uniformly random policy's mean evaluation return: the objective's 0
    eval_every: int = 0     # the runs' evaluation interval: pruning compares trials on this grid
    collapse_penalty: float = 0.5
    storage: str = ""       # the Optuna storage URL given by --storage; "" = study.journal in the tune folder
    device: str = "auto"    # not part of the study's identity: workers may differ
    format: int = 1
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    IDENTITY = ("agent", "env_id", "space", "seeds", "steps", "fixed", "pruner", "sampler_seed", "collapse_penalty")

    @property
    def study_name(self) -> str:
        return f"{self.agent}-{self.env_id}"


def tune_dir_for(out, agent: str, env_id: str, name: str | None = None) -> Path:
    return Path(out) / "tune" / (name or f"{agent}-{env_id.replace('/', '-').replace(':', '-')}")


def load_settings(tune_dir: Path) -> TuneSettings:
    """tune.json, with the default storage resolved inside TUNE_DIR wherever the folder now is (a copied
    or moved study keeps using its own journal)."""
    path = Path(tune_dir) / "tune.json"
    if not path.exists():
        raise UserError(f"{tune_dir} is not a tune directory (no tune.json); give the folder `rlsuite tune` printed")
    try:
        data = json.loads(path.read_text())
        names = {f.name for f in dataclasses.fields(TuneSettings)}
        settings = TuneSettings(**{k: v for k, v in data.items() if k in names})
    except (ValueError, TypeError, OSError) as e:
        raise UserError(f"{path} is damaged ({e}); restore it or tune into a new --out") from None
    settings.storage = storage_url(settings.storage or None, Path(tune_dir))
    return settings


def save_settings(tune_dir: Path, settings: TuneSettings) -> None:
    from rlsuite.rundir import atomic_write_text

    data = dataclasses.asdict(settings)
    if data["storage"] == storage_url(None, Path(tune_dir)):
        data["storage"] = ""  # the default: relative to the folder, so that it can move
    atomic_write_text(Path(tune_dir) / "tune.json", json.dumps(data, indent=1))


# ---------------------------------------------------------------------------------------------
# Storage and study
def storage_url(storage: str | None, tune_dir: Path) -> str:
    """--storage: a journal file (default: TUNE_DIR/study.journal), an SQLite file (.db, .sqlite) or an
    RDB URL that every worker can reach (e.g. postgresql://...)."""
    if not storage:
        return str((Path(tune_dir) / "study.journal").resolve())
    if "://" in storage:
        return storage
    path = Path(storage).resolve()
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path}"
    return str(path)


def open_storage(url: str, must_exist: bool = False):
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:  # noqa: BLE001 - a bad URL or an unreachable database: one line
            raise UserError(f"cannot open the study storage {url} ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    from optuna.storages.journal import JournalFileBackend

    if must_exist and not Path(url).is_file():
        raise UserError(f"the study journal {url} is missing; restore it (the study's trials are in it)")
    try:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    except OSError as e:
        raise UserError(f"cannot open the study journal {url} ({e.strerror}); choose a writable --storage") from None


def open_study(settings: TuneSettings, worker: int = 0, n_trials: int = 0, parallel: bool = False,
               must_exist: bool = False):
    import optuna

    # Failed trials are reported in one line by rlsuite; Optuna's own warning carries a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(settings.storage, must_exist)
    try:
        study = optuna.create_study(study_name=settings.study_name, storage=storage, pruner=make_pruner(settings),
                                    direction="maximize", load_if_exists=True)
        existing = len(study.get_trials(deepcopy=False))
    except (ValueError, KeyError, TypeError) as e:  # a journal cut short or edited
        raise UserError(f"the study storage {settings.storage} is damaged ({type(e).__name__}: {str(e)[:80]}); "
                        "restore it, or tune into a new --name") from None
    # TPE after a random start; with several workers the running trials count as "lies" so that workers
    # do not all propose the same point. The sampler's seed moves on with the study: a resumed study
    # must not replay its first random proposals.
    startup = max(2, min(10, n_trials // 4)) if n_trials else 10
    study.sampler = optuna.samplers.TPESampler(seed=settings.sampler_seed + 1000 * existing + worker,
                                               n_startup_trials=startup, multivariate=True, constant_liar=parallel)
    return study


def make_pruner(settings: TuneSettings):
    """Pruning compares trials at the same step of the same seed order (trial.report's step is
    seed index × budget + step). Nothing is pruned in the first quarter of the first seed."""
    import optuna

    warmup = settings.steps // 4
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup)
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup), reduction_factor=3)
    return optuna.pruners.NopPruner()


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    interrupted: int = 0
    best: tuple | None = None   # (value, trial number)

    @property
    def done(self) -> int:
        """Trials that count towards --trials: finished, pruned or failed (interrupted ones are retried)."""
        return self.complete + self.pruned + self.failed


def counts(study) -> Counts:
    from optuna.trial import TrialState

    c = Counts()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c.complete += 1
            if c.best is None or t.value > c.best[0]:
                c.best = (t.value, t.number)
        elif t.state == TrialState.PRUNED:
            c.pruned += 1
        elif t.state == TrialState.FAIL:
            if t.user_attrs.get("interrupted"):
                c.interrupted += 1
            else:
                c.failed += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
    return c


def progress_line(settings: TuneSettings, c: Counts, n_trials: int | None) -> str:
    best = f" · best {c.best[0]:.3f} (trial {c.best[1]})" if c.best else ""
    done = f"{c.done}/{n_trials}" if n_trials else str(c.done)
    return (f"[tune {settings.agent} {settings.env_id}] {done} trials: {c.complete} complete, "
            f"{c.pruned} pruned, {c.failed} failed, {c.running} running{best}")


def _progress_printer(settings: TuneSettings, n_trials: int, echo):
    """show(study): echo the progress line when it changed since the last one."""
    last = [""]

    def show(study):
        line = progress_line(settings, counts(study), n_trials)
        if line != last[0]:
            echo(line)
            last[0] = line
    return show


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_AFTER_S = 3600.0  # a running trial silent this long (no evaluation, no new seed) has lost its worker


def stale(trial, now: float | None = None) -> bool:
    """A RUNNING trial whose worker is gone: a process of this host that no longer exists (kill -9), or,
    for a worker elsewhere (a Ray node) or one killed before it signed the trial, no heartbeat for
    STALE_AFTER_S (the worker stamps one at every evaluation and every seed)."""
    worker = trial.user_attrs.get("worker") or {}
    if worker.get("host") == socket.gethostname() and not _pid_alive(worker.get("pid", -1)):
        return True
    beat = trial.user_attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is not None and (now or time.time()) - beat > STALE_AFTER_S


def recover(study, storage) -> int:
    """Before workers start: a trial left RUNNING by a worker that is gone (see `stale`) is marked
    failed-as-interrupted; every interrupted trial not yet retried is queued again with the same values,
    so that its runs resume from their checkpoints. Returns the number queued."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING and stale(t):
            storage.set_trial_user_attr(t._trial_id, "interrupted", "its worker process ended")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = 0
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            queued += 1
    return queued


# ---------------------------------------------------------------------------------------------
# One trial
def params_key(agent: str, env_id: str, overrides: dict) -> str:
    """Run names from the parameters: the same values give the same runs (a retried trial resumes them)."""
    text = json.dumps(sorted((k, repr(v)) for k, v in overrides.items()))
    return f"{agent}-{env_id.replace('/', '-').replace(':', '-')}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def eval_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, evaluation means) of a run's periodic evaluations (the final 20-episode one excluded)."""
    from rlsuite.rundir import csv_rows

    rows = [r for r in csv_rows(Path(run_dir) / "metrics.csv") if r.get("eval_mean")]
    summary = Path(run_dir) / "summary.json"
    if summary.exists() and rows:  # the last eval row is the final evaluation at the budget
        rows = rows[:-1]
    return np.array([float(r["step"]) for r in rows]), np.array([float(r["eval_mean"]) for r in rows])


def run_trial(trial, settings: TuneSettings, tune_dir: Path, echo=None) -> float:
    """Train the trial's runs seed after seed; report every evaluation to the pruner; return the score."""
    import optuna
    from rlsuite import runs
    from rlsuite.agents import get_agent
    from rlsuite.rundir import RunBusy
    from rlsuite.tuning import normalised_area, objective, parse_space, running_score

    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    config_cls = get_agent(settings.agent, kind="rl").config_cls
    space = parse_space(settings.space, config_cls, "tune.json [space]")
    params = {name: dist.suggest(trial, name) for name, dist in space.items()}
    overrides = {**settings.fixed, **{name: space[name].value(v) for name, v in params.items()}}

    def fail(message: str):
        trial.set_user_attr("error", message.splitlines()[0][:300])
        if echo is not None:
            echo(f"  trial {trial.number} failed: {message.splitlines()[0][:300]}")
        raise TrialFailed(message)

    try:
        fingerprint = runs.fingerprint(settings.agent, settings.env_id, settings.steps, overrides)
    except UserError as e:  # a combination the config refuses (e.g. a minibatch larger than the rollout)
        fail(f"invalid combination: {e}")
    key = params_key(settings.agent, settings.env_id, overrides)
    areas, finals, curves, run_dirs = [], [], [], []
    try:
        for i, seed in enumerate(settings.seeds):
            if STOP.code:  # a signal arrived between two runs: stop before the next one starts
                trial.set_user_attr("interrupted", "SIGTERM" if STOP.code == 143 else "SIGINT")
                raise StudyInterrupted(STOP.code)
            trial.set_user_attr("heartbeat", time.time())
            name = f"{key}-s{seed}"
            run_dir = tune_dir / "runs" / name
            seen: list[tuple[float, float]] = []

            def on_eval(step, mean, i=i, run_dir=run_dir, seen=seen):
                if not seen:  # a resumed run: the evaluations before its checkpoint count too
                    seen.extend(zip(*eval_curve(run_dir)))
                    seen[:] = [(s, m) for s, m in seen if s < step]
                seen.append((step, mean))
                steps, means = zip(*seen)
                # Reported at the evaluation point the step passed (a multiple of eval_every), not at the
                # step itself: rollouts of different sizes overshoot it differently, and the median
                # pruner only compares trials that reported at the same step.
                point = int(step) // settings.eval_every * settings.eval_every if settings.eval_every else int(step)
                trial.report(running_score(areas, steps, means, settings.threshold, settings.floor),
                             i * settings.steps + point)
                trial.set_user_attr("heartbeat", time.time())
                return trial.should_prune()

            train = partial(runs.train, settings.agent, settings.env_id, seed=seed, steps=settings.steps,
                            overrides=overrides, out=tune_dir, progress=False, device=settings.device, on_eval=on_eval)
            run_dirs.append(str(run_dir))
            trial.set_user_attr("runs", run_dirs)
            result = runs.reuse_or_train(tune_dir, name, train, fingerprint=fingerprint, on_eval=on_eval)
            if result.get("status") == "interrupted":
                if result.get("reason") == "pruned":
                    raise optuna.TrialPruned(f"pruned during seed {seed} at step {result['step']:,}")
                trial.set_user_attr("interrupted", result.get("signal") or "stopped")
                raise StudyInterrupted(result.get("exit_code") or 130)
            curves.append(eval_curve(run_dir))
            finals.append(result["final_eval"]["mean"])
            areas.append(normalised_area(*curves[-1], settings.threshold, settings.floor, settings.steps))
            trial.set_user_attr("finals", finals)
            trial.set_user_attr("areas", areas)
            if echo is not None:
                echo(f"  trial {trial.number} seed {seed}: final {finals[-1]:.1f}")
    except (optuna.TrialPruned, StudyInterrupted, TrialFailed):
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: the run kept its last checkpoint
        trial.set_user_attr("interrupted", "SIGINT")
        raise
    except RunBusy as e:
        fail(f"busy: {e}")
    except UserError as e:  # divergence, a full disk, a bad combination found by the agent
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - any crash fails this trial only; the study goes on
        fail(f"{type(e).__name__}: {e}")
    score = objective(curves, finals, settings.threshold, settings.floor, settings.steps, settings.collapse_penalty)
    trial.set_user_attr("stays_solved", sum(f >= settings.threshold for f in finals))
    return score


# ---------------------------------------------------------------------------------------------
# Workers
def work(tune_dir: str | Path, n_trials: int, worker: int = 0, parallel: bool = False, on_trial=None,
         echo=print) -> int:
    """One worker: run trials against the shared study until --trials are done. Returns an exit code:
    0, or 130 / 143 when a signal stopped it (the trial it was running is retried on the next start)."""
    import torch

    tune_dir = Path(tune_dir)
    torch.set_num_threads(1)
    settings = load_settings(tune_dir)
    study = open_study(settings, worker, n_trials, parallel)

    def hparams(study, trial):  # each finished trial shows in TensorBoard's HParams view at once
        from rlsuite import tune_report

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
        except KeyboardInterrupt:
            return 130
        if on_trial is not None:
            on_trial(study)
        if STOP.code:  # a signal arrived between trials
            return STOP.code


def _worker_main(argv: list[str]) -> None:
    """`python -m rlsuite.study --worker TUNE_DIR N_TRIALS INDEX`: one local worker process."""
    tune_dir, n_trials, index = argv[0], int(argv[1]), int(argv[2])

    def stop(signum, frame):  # between runs: start nothing new; inside a run the engine's handler rules
        STOP.code = 143 if signum == signal.SIGTERM else 130

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.exit(work(tune_dir, n_trials, index, parallel=True, echo=lambda line: print(line, flush=True)))


def _mark_worker_trials_failed(study, storage, pid: int, why: str, interrupted: bool) -> None:
    """The RUNNING trial of a worker process that ended: failed (a crash), or interrupted (killed by a
    signal: retried with its values, its runs resuming)."""
    from optuna.trial import TrialState

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
    show = _progress_printer(settings, n_trials, echo)
    if workers == 1:  # in this process: simplest to debug, and Ctrl-C reaches the run directly
        return work(tune_dir, n_trials, 0, parallel=False, on_trial=show, echo=echo)
    logs = tune_dir / "workers"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    def start(index: int):
        log = open(logs / f"worker-{index}.log", "a")
        return subprocess.Popen([sys.executable, "-m", "rlsuite.study", "--worker", str(tune_dir), str(n_trials),
                                 str(index)], stdout=log, stderr=subprocess.STDOUT, env=env), log

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
    from rlsuite.sweep import connect_ray

    ray = connect_ray(address, workers)
    if workers is None:  # one worker per CPU of the cluster
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    echo(f"{workers} Ray workers")
    study = open_study(settings, 0, n_trials)
    code, show = 0, _progress_printer(settings, n_trials, echo)
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
def random_floor(card, config) -> float:
    """The mean evaluation return of uniformly random actions: the objective's zero."""
    from rlsuite.engine import EVAL_SEED_OFFSET
    from rlsuite.envs import make_env
    from rlsuite.evaluation import evaluate

    env = make_env(card, training=False)
    space = env.action_space
    env.close()
    space.seed(0)
    returns = evaluate(lambda obs: np.stack([space.sample() for _ in range(len(obs))]), card,
                       config.eval_episodes, EVAL_SEED_OFFSET)
    return float(np.mean(returns))


def card_suggestions(agent: str, env_id: str, fixed: dict, space_data: dict) -> dict | None:
    """The suggestions that reproduce the current card (with FIXED) in this space, or None when some
    field's card value is outside it."""
    from rlsuite.agents import get_agent
    from rlsuite.cards import resolve
    from rlsuite.tuning import parse_space

    config_cls = get_agent(agent, kind="rl").config_cls
    config, _ = resolve(agent, config_cls, env_id, fixed)
    out = {}
    for name, dist in parse_space(space_data, config_cls, "space").items():
        value = dist.suggestion(getattr(config, name))
        if value is None:
            return None
        out[name] = value
    return out


def build_space(agent: str, config_cls, space_file: str | None, search: tuple[str, ...], fixed: dict) -> dict:
    """The search space as data: the agent card's `tune:` section, replaced by --space FILE, then
    --search FIELD=DISTRIBUTION entries; fields fixed with --set leave it."""
    import yaml

    from rlsuite.cards import agent_card_path, load_agent_card, read_yaml
    from rlsuite.tuning import parse_space

    if space_file:
        data = read_yaml(Path(space_file))
        if isinstance(data, dict) and "tune" in data:
            data = data["tune"]
        source = space_file
    else:
        data = dict(load_agent_card(agent).get("tune") or {})
        source = f"{agent_card_path(agent)} [tune]"
    data = dict(data) if isinstance(data, dict) else data
    for item in search:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--search {item!r} is not FIELD=DISTRIBUTION; e.g. --search 'lr={{loguniform: [1e-4, 1e-2]}}'")
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UserError(f"--search {key}: cannot read {text!r} ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            data = {}
        data[key.strip()] = spec
        source = f"{source} + --search"
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in fixed}
    if not data:
        raise UserError(f"nothing to tune for {agent}: add a `tune:` section to its card, or give --space FILE or "
                        f"--search FIELD=DISTRIBUTION (fields fixed with --set are not searched)")
    parse_space(data, config_cls, source)  # every mistake, one line, before anything starts
    return data


def tune(agent: str, env_id: str, trials: int, seeds: int = 3, first_seed: int = 0, steps: int | None = None,
         sets: tuple[str, ...] = (), space_file: str | None = None, search: tuple[str, ...] = (), workers: int | None = 1,
         storage: str | None = None, backend: str = "local", address: str | None = None, out="results",
         name: str | None = None, pruner: str = "median", sampler_seed: int = 0, device: str = "auto",
         reference: bool = True, enqueue: list[dict] | None = None, echo=print) -> dict:
    """Run (or continue) a study; returns {"tune_dir", "exit_code", "counts", "report"}. WORKERS None: the
    CPU cores (local) or the cluster's CPUs (Ray). ENQUEUE: values a new study tries first, in order (e.g. a
    known recipe, or another study's trials to time). A study that ends with no complete trial, or short
    of --trials because its workers died, raises UserError after its report is written."""
    from rlsuite import runs
    from rlsuite.agents import get_agent
    from rlsuite.cards import coerce, parse_overrides
    from rlsuite.envs import threshold as env_threshold

    if isinstance(trials, bool) or not 0 < trials <= MAX_TRIALS:
        raise UserError(f"--trials must be in [1, {MAX_TRIALS:,}], got {trials}")
    if not 0 < seeds <= 100:
        raise UserError(f"--seeds must be in [1, 100], got {seeds}")
    if workers is not None and not 0 < workers <= 1024:
        raise UserError(f"--workers must be in [1, 1024], got {workers}")
    if pruner not in PRUNERS:
        raise UserError(f"unknown pruner {pruner!r}; use {', '.join(PRUNERS)}")
    if backend not in ("local", "ray"):
        raise UserError(f"unknown backend {backend!r}; use local or ray")
    if address and backend != "ray":
        raise UserError("--address is for --backend ray")
    runs.check_seed(first_seed, "--first-seed")
    runs.check_seed(first_seed + seeds - 1, "--first-seed + --seeds - 1")
    config_cls = get_agent(agent, kind="rl").config_cls
    fixed = {k: coerce(config_cls, k, v) for k, v in parse_overrides(sets).items()}
    fixed = {k: v.to_data() if hasattr(v, "to_data") else list(v) if isinstance(v, tuple) else v for k, v in fixed.items()}
    space = build_space(agent, config_cls, space_file, search, fixed)
    _, config, card = runs.prepare(agent, env_id, steps, fixed)
    runs.resolve_device(device)
    threshold = env_threshold(card)
    if threshold is None:
        raise UserError(f"{env_id} has no solve threshold (gymnasium's reward_threshold is None), and the objective "
                        f"is normalised by one; write an env card envs/{env_id}.yaml with `threshold: <return>`")
    tune_dir = tune_dir_for(out, agent, env_id, name)
    try:
        (tune_dir / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {tune_dir} ({e.strerror}); choose a writable --out") from None
    wanted = TuneSettings(agent=agent, env_id=env_id, space=space, seeds=list(range(first_seed, first_seed + seeds)),
                          steps=config.total_steps, fixed=json.loads(json.dumps(fixed)), pruner=pruner,
                          sampler_seed=sampler_seed, threshold=float(threshold), floor=0.0,
                          eval_every=int(getattr(config, "eval_every", 0) or 0),
                          storage=storage_url(storage, tune_dir), device=device)
    if (tune_dir / "tune.json").exists():
        settings = load_settings(tune_dir)
        mine, theirs = dataclasses.asdict(wanted), dataclasses.asdict(settings)
        differ = [k for k in TuneSettings.IDENTITY if json.dumps(mine[k], sort_keys=True) != json.dumps(theirs[k], sort_keys=True)]
        if storage and storage_url(storage, tune_dir) != settings.storage:
            differ.append("storage")
        if differ:
            first = differ[0]
            was = settings.storage if first == "storage" else json.dumps(theirs[first])
            raise UserError(f"{tune_dir} holds a study with other settings ({', '.join(differ)}; {first} was "
                            f"{was[:80]}{'...' if len(was) > 80 else ''}); re-run with the same options to continue "
                            "it, or choose another --name / --out")
        settings.device = device
        study = open_study(settings, 0, trials, must_exist=True)
        echo(f"continuing the study in {tune_dir}")
    else:
        settings = wanted
        settings.floor = random_floor(card, config)
        study = open_study(settings, 0, trials)  # a storage that cannot be opened fails before anything is written
        echo(f"new study in {tune_dir}: {len(space)} fields ({', '.join(space)}), {seeds} seeds per trial, "
             f"{settings.steps:,} steps each; objective 0 = random policy ({settings.floor:.1f}), 1 = solved "
             f"({settings.threshold:g}) from the first step")
        card_values = card_suggestions(agent, env_id, fixed, space) if enqueue is None else None
        if card_values:  # start from the current card when the space can express it
            study.enqueue_trial(card_values, user_attrs={"card": True})
            echo("trial 0 is the current card (each of its values lies in the space)")
        for values in enqueue or []:
            study.enqueue_trial(values)
    try:
        save_settings(tune_dir, settings)
    except OSError as e:
        raise disk_error(e, f"{tune_dir}/tune.json", "free space or choose a writable --out") from None
    queued = recover(study, study._storage)
    if queued:
        echo(f"{queued} interrupted trial(s) queued again; their runs resume from their checkpoints")
    echo(progress_line(settings, counts(study), trials))
    if backend == "ray":
        code = run_ray(settings, tune_dir, trials, workers, address, echo)
    else:
        code = run_local(settings, tune_dir, trials, os.cpu_count() or 1 if workers is None else workers, echo)
    from rlsuite import tune_report

    c = counts(study)
    if code == 0 and reference and c.complete:
        code = tune_report.reference_runs(settings, tune_dir, echo)
    try:
        report = tune_report.write_report(tune_dir)
    except OSError as e:
        raise disk_error(e, f"the report in {tune_dir}", "free space, then `rlsuite tune show` to write it") from None
    if code == 0 and c.complete == 0:
        first = next((t.user_attrs["error"] for t in study.get_trials(deepcopy=False) if t.user_attrs.get("error")),
                     "no trial completed")
        raise UserError(f"none of the {c.done} trials completed (first error: {first}); see {report}")
    if code == 0 and c.done + c.running < trials:
        raise UserError(f"the study stopped at {c.done} of {trials} trials: its workers ended (logs in "
                        f"{tune_dir / 'workers'}); re-run the same command to continue")
    return {"tune_dir": str(tune_dir), "exit_code": code, "counts": c, "report": str(report)}


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker_main(sys.argv[2:])
