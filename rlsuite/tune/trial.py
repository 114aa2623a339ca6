"""One trial of a study: train one run per seed with the proposed values, score them with the objective,
feed the pruner; a failed run fails the trial with its one-line reason, a stop interrupts the study."""

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import numpy as np

from rlsuite import runs
from rlsuite.core.errors import UserError
from rlsuite.core.seeding import Seeds
from rlsuite.envs.make import make_env
from rlsuite.registry import get_agent
from rlsuite.run.evaluation import evaluate
from rlsuite.run.rundir import RunBusy, csv_rows
from rlsuite.tune.space import cost_term, normalised_area, objective, parse_space, running_score
from rlsuite.tune.study import TuneSettings


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


def params_key(agent: str, env_id: str, overrides: dict) -> str:
    """Run names from the parameters: the same values give the same runs (a retried trial resumes them)."""
    text = json.dumps(sorted((k, repr(v)) for k, v in overrides.items()))
    return f"{agent}-{env_id.replace('/', '-').replace(':', '-')}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def eval_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, evaluation means) of a run's periodic evaluations (the final 20-episode one excluded)."""

    rows = [r for r in csv_rows(Path(run_dir) / "metrics.csv") if r.get("eval_mean")]
    summary = Path(run_dir) / "summary.json"
    if summary.exists() and rows:  # the last eval row is the final evaluation at the budget
        rows = rows[:-1]
    return np.array([float(r["step"]) for r in rows]), np.array([float(r["eval_mean"]) for r in rows])


def run_trial(trial, settings: TuneSettings, tune_dir: Path, echo=None) -> float:
    """Train the trial's runs seed after seed; report every evaluation to the pruner; return the score."""
    import optuna  # heavy; loaded only when tuning

    # where the trial ran: its process, and whether that is a Ray worker (Ray sets RAY_RAYLET_PID in its workers)
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(), "ray": "RAY_RAYLET_PID" in os.environ})
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
        config = runs.prepare(settings.agent, settings.env_id, settings.steps, overrides)[1]
    except UserError as e:  # a combination the config refuses (e.g. a minibatch larger than the rollout)
        fail(f"invalid combination: {e}")
    known_cost = trial_cost(settings, config)  # `updates` is known before training; `cpu` once the runs finish
    early_penalty = cost_term(known_cost, settings.cost_reference, settings.cost_weight)
    key = params_key(settings.agent, settings.env_id, overrides)
    names = [f"{key}-s{seed}" for seed in settings.seeds]
    run_dirs = [str(tune_dir / "runs" / name) for name in names]
    trial.set_user_attr("runs", run_dirs)
    # The trial's seeds train together as one population: every member in training evaluates at the same steps.
    # When the last of them has reported at a point, the trial reports its running score there to the pruner
    # (finished seeds reused from an earlier attempt count with their whole curves). Agents that train seeds one
    # after another report each seed's points after the previous seeds' budgets, as before.
    seen: list[list[tuple[float, float]]] = [list(zip(*eval_curve(d))) if (Path(d) / "summary.json").exists() else []
                                             for d in run_dirs]
    training: set[int] = set()  # the members the population is training
    together = runs.trains_together(settings.agent, settings.env_id, settings.steps, overrides)

    def on_eval_of(i: int):
        training.add(i)

        def on_eval(step, mean):
            if not seen[i] or seen[i][-1][0] >= step:  # a resumed run: the evaluations before its checkpoint count
                seen[i][:] = [(s, m) for s, m in zip(*eval_curve(run_dirs[i])) if s < step]
            seen[i].append((step, mean))
            if together and any(not seen[j] or seen[j][-1][0] != step for j in training):
                return False
            # Reported at the evaluation point the step passed (a multiple of eval_every), not at the
            # step itself: rollouts of different sizes overshoot it differently, and the median
            # pruner only compares trials that reported at the same step.
            point = int(step) // settings.eval_every * settings.eval_every if settings.eval_every else int(step)
            curves = seen if together else seen[:i + 1]
            trial.report(running_score(curves, settings.threshold, settings.floor) - early_penalty,
                         point if together else i * settings.steps + point)
            trial.set_user_attr("heartbeat", time.time())
            return trial.should_prune()
        return on_eval

    try:
        if STOP.code:  # a signal arrived before the trial's runs started
            trial.set_user_attr("interrupted", "SIGTERM" if STOP.code == 143 else "SIGINT")
            raise StudyInterrupted(STOP.code)
        trial.set_user_attr("heartbeat", time.time())
        results = runs.reuse_or_train_seeds(tune_dir, names, list(settings.seeds), settings.agent, settings.env_id,
                                            steps=settings.steps, overrides=overrides, fingerprint=fingerprint,
                                            device=settings.device, on_eval_of=on_eval_of)
        stopped = [r for r in results if r.get("status") == "interrupted"]
        if any(r.get("reason") == "pruned" for r in stopped):
            raise optuna.TrialPruned(f"pruned at step {stopped[0]['step']:,}")
        if stopped:
            trial.set_user_attr("interrupted", stopped[0].get("signal") or "stopped")
            raise StudyInterrupted(stopped[0].get("exit_code") or 130)
        busy = [r for r in results if r.get("status") == "busy"]
        if busy:
            raise RunBusy(busy[0]["error"])
        failed = [r for r in results if r.get("status") == "failed"]
        if failed:
            raise UserError(failed[0]["error"])
        curves = [eval_curve(d) for d in run_dirs]
        finals = [r["final_eval"]["mean"] for r in results]
        trial.set_user_attr("finals", finals)
        trial.set_user_attr("areas", [normalised_area(*c, settings.threshold, settings.floor, settings.steps) for c in curves])
        if echo is not None:
            for seed, final in zip(settings.seeds, finals):
                echo(f"  trial {trial.number} seed {seed}: final {final:.1f}")
    except (optuna.TrialPruned, StudyInterrupted, TrialFailed):
        raise
    except KeyboardInterrupt as e:  # a second Ctrl-C or SIGTERM: the run kept its last checkpoint
        trial.set_user_attr("interrupted", getattr(e, "signal_name", "SIGINT"))
        raise
    except RunBusy as e:
        fail(f"busy: {e}")
    except UserError as e:  # divergence, a full disk, a bad combination found by the agent
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - any crash fails this trial only; the study goes on
        fail(f"{type(e).__name__}: {e}")
    quality = objective(curves, finals, settings.threshold, settings.floor, settings.steps, settings.collapse_penalty)
    cost = trial_cost(settings, config, results)
    trial.set_user_attr("stays_solved", sum(f >= settings.threshold for f in finals))
    trial.set_user_attr("quality", quality)
    if cost is not None:
        trial.set_user_attr("cost", cost)
    return quality - cost_term(cost, settings.cost_reference, settings.cost_weight)


def trial_cost(settings: TuneSettings, config, summaries: list[dict] | None = None) -> float | None:
    """The trial's cost per env step in the study's unit (rlsuite.tune.space.COSTS): gradient steps from the
    config, or the runs' training CPU milliseconds (their own share of a population's time) once they finished."""
    if settings.cost == "updates":
        return config.gradient_steps_per_env_step()
    if settings.cost == "cpu" and summaries and all(s.get("cpu_s") is not None for s in summaries):
        return float(np.mean([1000 * s["cpu_s"] / max(s["steps"], 1) for s in summaries]))
    return None  # no cost term (a run resumed from a checkpoint that kept no CPU time has none to give)

# ---------------------------------------------------------------------------------------------
# Workers


def random_floor(card, config) -> float:
    """The mean evaluation return of uniformly random actions: the objective's zero."""

    env = make_env(card, training=False)
    space = env.action_space
    env.close()
    space.seed(0)
    returns = evaluate(lambda obs: np.stack([space.sample() for _ in range(len(obs))]), card,
                       config.eval_episodes, Seeds(0).eval_envs(config.eval_episodes))
    return float(np.mean(returns))
