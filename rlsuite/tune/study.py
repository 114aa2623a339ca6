"""`rlsuite tune`'s study: its settings (tune.json), its Optuna storage, pruner, trial counts and the recovery
of trials whose worker died.

Hyperparameter search with Optuna over ordinary rlsuite runs.

A study lives in one tune directory, OUT/tune/<agent>-<env>:

    tune.json        what is tuned: agent, env, search space, seeds, budget, fixed fields, objective
    study.journal    the Optuna study (or the SQLite / RDB storage named by --storage)
    runs/            every trial's runs, ordinary run directories named <params-hash>-s<seed>
    workers/         one log per local worker process
    tensorboard/     one HParams entry per finished trial
    report.md, best.yaml, *.png   written by rlsuite.tune.report

A trial proposes values for the space's fields (TPE), trains one run per seed with them and scores the
runs with rlsuite.tune.space.objective. Its periodic evaluations feed the pruner as they happen. Runs are
named by their parameters, so a trial interrupted by Ctrl-C, SIGTERM or a kill is retried on the next
invocation with the same values and its runs resume from their checkpoints. A trial whose run fails
(bad combination, divergence, crash) is recorded as failed with its one-line reason; the study goes on.
Workers are local processes sharing the storage (the default), or Ray tasks on a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rlsuite.core.errors import UserError
from rlsuite.run.rundir import atomic_write_text, check_folder_name

PRUNERS = ("median", "halving", "none")
MAX_TRIALS = 100_000


@dataclass
class TuneSettings:
    """What a study tunes; stored in tune.json. A re-run must match it to continue the study."""

    agent: str
    env_id: str
    space: dict             # field -> distribution, as data (rlsuite.tune.space.parse_space)
    seeds: list[int]
    steps: int              # each trial's budget per seed
    fixed: dict             # --set: the same value in every trial
    pruner: str
    sampler_seed: int
    threshold: float
    floor: float            # a uniformly random policy's mean evaluation return: the objective's 0
    eval_every: int = 0     # the runs' evaluation interval: pruning compares trials on this grid
    collapse_penalty: float = 0.5
    cost: str = "none"      # the objective's cost term (rlsuite.tune.space.COSTS); a study from before it had none
    cost_weight: float = 0.0
    cost_reference: float = 1.0  # the cost a trial is measured against: the current card's (updates), 1 ms (cpu)
    storage: str = ""       # the Optuna storage URL given by --storage; "" = study.journal in the tune folder
    device: str = "auto"    # not part of the study's identity: workers may differ
    format: int = 1
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    IDENTITY = ("agent", "env_id", "space", "seeds", "steps", "fixed", "pruner", "sampler_seed", "collapse_penalty",
                "cost", "cost_weight")

    @property
    def study_name(self) -> str:
        return f"{self.agent}-{self.env_id}"


def tune_dir_for(out, agent: str, env_id: str, name: str | None = None) -> Path:
    if name is not None:
        check_folder_name(name, "--name")
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
        check_settings(settings)
    except (ValueError, TypeError, OSError, AttributeError) as e:
        raise UserError(f"{path} is damaged ({e}); restore it or tune into a new --out") from None
    settings.storage = storage_url(settings.storage or None, Path(tune_dir))
    return settings


def check_settings(settings: TuneSettings) -> None:
    """tune.json is a file anyone can edit: every field must have its type (and numbers be finite) before a
    report uses it. Raises ValueError naming the field."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    checks = {
        "agent": isinstance(settings.agent, str), "env_id": isinstance(settings.env_id, str),
        "space": isinstance(settings.space, dict), "fixed": isinstance(settings.fixed, dict),
        "seeds": isinstance(settings.seeds, list) and bool(settings.seeds) and all(map(integer, settings.seeds)),
        "steps": integer(settings.steps) and settings.steps > 0, "eval_every": integer(settings.eval_every),
        "pruner": settings.pruner in PRUNERS, "sampler_seed": integer(settings.sampler_seed),
        "threshold": number(settings.threshold), "floor": number(settings.floor),
        "collapse_penalty": number(settings.collapse_penalty), "cost": isinstance(settings.cost, str),
        "cost_weight": number(settings.cost_weight),
        "cost_reference": number(settings.cost_reference) and settings.cost_reference > 0,
        "storage": isinstance(settings.storage, str), "device": isinstance(settings.device, str),
        "created": isinstance(settings.created, str),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"{bad[0]}={getattr(settings, bad[0])!r} is not valid")


def save_settings(tune_dir: Path, settings: TuneSettings) -> None:
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
    import optuna  # heavy; loaded only when tuning

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "://" in url:
        sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        if must_exist and sqlite_file is not None and not Path(sqlite_file).is_file():  # reading never creates one
            raise UserError(f"the study database {sqlite_file} is missing; restore it (the study's trials are in it)")
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as e:  # noqa: BLE001 - a bad URL or an unreachable database: one line
            raise UserError(f"cannot open the study storage {url} ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    from optuna.storages.journal import JournalFileBackend  # heavy; loaded only when tuning

    if must_exist and not Path(url).is_file():
        raise UserError(f"the study journal {url} is missing; restore it (the study's trials are in it)")
    try:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    except OSError as e:
        raise UserError(f"cannot open the study journal {url} ({e.strerror}); choose a writable --storage") from None


def open_study(settings: TuneSettings, worker: int = 0, n_trials: int = 0, parallel: bool = False,
               must_exist: bool = False):
    import optuna  # heavy; loaded only when tuning

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
    import optuna  # heavy; loaded only when tuning

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
    from optuna.trial import TrialState  # heavy; loaded only when tuning

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


def progress_printer(settings: TuneSettings, n_trials: int, echo):
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
    from optuna.trial import TrialState  # heavy; loaded only when tuning

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
