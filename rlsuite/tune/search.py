"""`rlsuite tune`: the search space (a file, --search, or the card's own `tune:` section), the study opened
or continued, the workers started, the report written."""

import contextlib
import dataclasses
import json
import math
import os
from pathlib import Path

import yaml

from rlsuite import runs
from rlsuite.config.cards import agent_card_path, load_agent_card, read_yaml, resolve
from rlsuite.config.schema import check_seed, coerce, parse_overrides
from rlsuite.core.errors import UserError
from rlsuite.envs.make import threshold as env_threshold
from rlsuite.registry import get_agent
from rlsuite.run.live import LiveRuns
from rlsuite.run.rundir import disk_error
from rlsuite.tune import report as tune_report
from rlsuite.tune.space import COSTS, DEFAULT_COST, DEFAULT_COST_WEIGHT, check_space_ranges, cost_sentence, parse_space
from rlsuite.tune.study import (
    MAX_TRIALS,
    PRUNERS,
    TuneSettings,
    counts,
    load_settings,
    open_study,
    progress_line,
    recover,
    save_settings,
    storage_url,
    tune_dir_for,
)
from rlsuite.tune.trial import random_floor
from rlsuite.tune.workers import run_local, run_ray


def card_suggestions(agent: str, env_id: str, fixed: dict, space_data: dict) -> dict | None:
    """The suggestions that reproduce the current card (with FIXED) in this space, or None when some
    field's card value is outside it."""

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
        except (yaml.YAMLError, RecursionError) as e:  # RecursionError: nested thousands deep
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
         storage: str | None = None, backend: str = "local", address: str | None = None, out=".",
         name: str | None = None, pruner: str = "median", sampler_seed: int = 0, device: str = "auto",
         reference: bool = True, enqueue: list[dict] | None = None, echo=print, cost: str | None = None,
         cost_weight: float | None = None, live: str | None = None) -> dict:
    """Run (or continue) a study; returns {"tune_dir", "exit_code", "counts", "report"}. WORKERS None: the
    CPU cores (local) or the cluster's CPUs (Ray). ENQUEUE: values a new study tries first, in order (e.g. a
    known recipe, or another study's trials to time). A study that ends with no complete trial, or short
    of --trials because its workers died, raises UserError after its report is written."""

    if isinstance(trials, bool) or not 0 < trials <= MAX_TRIALS:
        raise UserError(f"--trials must be in [1, {MAX_TRIALS:,}], got {trials}")
    if isinstance(sampler_seed, bool) or not isinstance(sampler_seed, int) or not 0 <= sampler_seed < 2**32:
        raise UserError(f"--sampler-seed must be an integer in [0, 2^32), got {sampler_seed!r}")
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
    if cost is not None and cost not in COSTS:
        raise UserError(f"unknown cost {cost!r}; use {', '.join(COSTS)}")
    if cost_weight is not None and not (math.isfinite(cost_weight) and 0 <= cost_weight <= 10):
        raise UserError(f"--cost-weight must be in [0, 10], got {cost_weight}")
    check_seed(first_seed, "--first-seed")
    check_seed(first_seed + seeds - 1, "--first-seed + --seeds - 1")
    config_cls = get_agent(agent, kind="rl").config_cls
    fixed = {k: coerce(config_cls, k, v) for k, v in parse_overrides(sets).items()}
    fixed = {k: v.to_data() if hasattr(v, "to_data") else list(v) if isinstance(v, tuple) else v for k, v in fixed.items()}
    space = build_space(agent, config_cls, space_file, search, fixed)
    _, config, card = runs.prepare(agent, env_id, steps, fixed)
    check_space_ranges(parse_space(space, type(config), "the search space"), config)
    runs.resolve_device(device)
    threshold = env_threshold(card)
    if threshold is None:
        raise UserError(f"{env_id} has no solve threshold (gymnasium's reward_threshold is None), and the objective "
                        f"is normalised by one; write an env card cards/envs/{env_id}.yaml with `threshold: <return>`")
    tune_dir = tune_dir_for(out, agent, env_id, name)
    created = [p for p in (tune_dir, *tune_dir.parents) if not p.exists()]  # removed again if the study cannot open
    try:
        (tune_dir / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {tune_dir} ({e.strerror}); choose a writable --out") from None
    wanted = TuneSettings(agent=agent, env_id=env_id, space=space, seeds=list(range(first_seed, first_seed + seeds)),
                          steps=config.total_steps, fixed=json.loads(json.dumps(fixed)), pruner=pruner,
                          sampler_seed=sampler_seed, threshold=float(threshold), floor=0.0,
                          eval_every=int(getattr(config, "eval_every", 0) or 0),
                          storage=storage_url(storage, tune_dir), device=device, cost=cost or DEFAULT_COST,
                          cost_weight=DEFAULT_COST_WEIGHT if cost_weight is None else cost_weight)
    if wanted.cost == "none":
        wanted.cost_weight = 0.0
    # `updates` are measured against the current card's (with --set), so the card scores its quality alone
    wanted.cost_reference = config.gradient_steps_per_env_step() if wanted.cost == "updates" else 1.0
    if (tune_dir / "tune.json").exists():
        settings = load_settings(tune_dir)
        if cost is None:  # continuing without --cost: the study's own cost term
            wanted.cost, wanted.cost_weight = settings.cost, settings.cost_weight
            if cost_weight is not None:
                wanted.cost_weight = cost_weight
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
        try:
            study = open_study(settings, 0, trials)  # a storage that cannot be opened leaves nothing behind
        except UserError:
            for folder in [tune_dir / "runs", *created]:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty folders go
            raise
        echo(f"new study in {tune_dir}: {len(space)} fields ({', '.join(space)}), {seeds} seeds per trial, "
             f"{settings.steps:,} steps each; objective 0 = random policy ({settings.floor:.1f}), 1 = solved "
             f"({settings.threshold:g}) from the first step" + cost_sentence(settings))
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
    # the trial runs in flight, whichever worker trains them (`live`: rlsuite.run.live's mode; None: not shown)
    with LiveRuns(lambda: sorted(p for p in (tune_dir / "runs").iterdir() if p.is_dir()),
                  f"tune {agent} {env_id}", live):
        if backend == "ray":
            code = run_ray(settings, tune_dir, trials, workers, address, echo)
        else:
            code = run_local(settings, tune_dir, trials, os.cpu_count() or 1 if workers is None else workers, echo)

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
