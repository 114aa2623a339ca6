"""What a study produces: the best trial as a ready card entry (best.yaml), report.md with the
optimisation history, parameter importances and the best trial's curves against the current card's
(PNG + SVG), and TensorBoard HParams entries. Reads only the tune directory, so `rlsuite tune show`
regenerates everything at any time, also while workers run."""

from __future__ import annotations

import json
import math
import re
import warnings
from functools import partial
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import yaml
from torch.utils.tensorboard import SummaryWriter

from rlsuite import runs
from rlsuite.config.cards import load_agent_card
from rlsuite.config.schema import coerce
from rlsuite.core.errors import UserError
from rlsuite.experiments.plots import save_figure, plot_curves
from rlsuite.registry import get_agent
from rlsuite.run.rundir import atomic_write_text, hardware
from rlsuite.tune.space import cost_sentence, cost_term, objective, parse_space
from rlsuite.tune.study import TuneSettings, counts, load_settings, open_study, progress_line, storage_url
from rlsuite.tune.trial import eval_curve, params_key, trial_cost


def card_run_name(settings: TuneSettings, seed: int) -> str:
    return f"card-{params_key(settings.agent, settings.env_id, settings.fixed)}-s{seed}"


def reference_runs(settings: TuneSettings, tune_dir: Path, echo=print) -> int:
    """The current card (with the study's fixed fields) on the study's seeds: what the best trial is
    measured against. Reused once finished; a failure is reported and leaves the report without them.
    Returns 0, or 130 / 143 when a signal stopped a run (it resumes on the next invocation)."""

    if card_trial(open_study(settings).get_trials(deepcopy=False)) is not None:
        return 0  # the study's first trial was the card: its runs are the reference
    results = []
    for seed in settings.seeds:
        train = partial(runs.train, settings.agent, settings.env_id, seed=seed, steps=settings.steps,
                        overrides=settings.fixed, out=tune_dir, progress=False, device=settings.device)
        try:
            fp = runs.fingerprint(settings.agent, settings.env_id, settings.steps, settings.fixed)
            result = runs.reuse_or_train(tune_dir, card_run_name(settings, seed), train, fingerprint=fp)
        except UserError as e:
            echo(f"the current card's run on seed {seed} failed ({e}); the report goes without it")
            return 0
        if result.get("status") != "complete":
            return result.get("exit_code") or 130
        results.append(result)
    echo(f"current card on seeds {settings.seeds}: finals " + ", ".join(f"{r['final_eval']['mean']:.1f}" for r in results))
    return 0


def card_trial(trials):
    """The complete trial that ran the current card's values (trial 0 of a study that started from it)."""
    from optuna.trial import TrialState  # heavy; loaded only when tuning

    return next((t for t in trials if t.user_attrs.get("card") and t.state == TrialState.COMPLETE), None)


def card_score(settings: TuneSettings, tune_dir: Path, trials) -> tuple[float, list[float], list[str]] | None:
    """(objective, finals, run dirs) of the current card on the study's seeds (its trial, or its reference
    runs) when they all finished."""

    trial = card_trial(trials)
    if trial is not None:
        return trial.value, trial.user_attrs["finals"], trial.user_attrs["runs"]
    dirs = [tune_dir / "runs" / card_run_name(settings, s) for s in settings.seeds]
    if not all((d / "summary.json").exists() for d in dirs):
        return None
    summaries = [json.loads((d / "summary.json").read_text()) for d in dirs]
    finals = [s["final_eval"]["mean"] for s in summaries]
    curves = [eval_curve(d) for d in dirs]
    quality = objective(curves, finals, settings.threshold, settings.floor, settings.steps, settings.collapse_penalty)
    cost = settings.cost_reference if settings.cost == "updates" else trial_cost(settings, None, summaries)
    return quality - cost_term(cost, settings.cost_reference, settings.cost_weight), finals, [str(d) for d in dirs]


def card_entry(settings: TuneSettings, params: dict, comment: str) -> str:
    """The env entry of the agent card with the study's fixed fields and PARAMS applied, as YAML to
    paste under `envs:` in cards/agents/<agent>.yaml."""

    config_cls = get_agent(settings.agent).config_cls
    entry = dict((load_agent_card(settings.agent).get("envs") or {}).get(settings.env_id) or {})
    entry.update(settings.fixed)

    space = parse_space(settings.space, config_cls, "tune.json [space]")
    for key, value in params.items():  # as the card writes them: hidden "64,64" -> [64, 64]
        value = coerce(config_cls, key, space[key].value(value) if key in space else value)
        entry[key] = list(value) if isinstance(value, tuple) else value.to_data() if hasattr(value, "to_data") else value
    entry.pop("total_steps", None)  # the budget lives in one place (the env card, or the card's own entry)
    text = yaml.safe_dump({settings.env_id: entry}, sort_keys=False, default_flow_style=None)
    head = [f"# {line}" for line in comment.splitlines()]
    head.append(f"# Paste under `envs:` in cards/agents/{settings.agent}.yaml (trials ran {settings.steps:,} steps each; "
                "the budget stays the card's) and validate on fresh seeds (e.g. 100-109) before trusting it.")
    return "\n".join(head) + "\n" + text


def _history_figure(trials, card: float | None, out: Path) -> Path:
    matplotlib.use("Agg")
    from optuna.trial import TrialState  # heavy; loaded only when tuning

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in done], [t.value for t in done], s=18, label="complete", zorder=3)
    ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
               marker="x", s=18, color="gray", label="pruned (last report)", zorder=2)
    if done:
        order = sorted(done, key=lambda t: t.number)
        ax.step([t.number for t in order], np.maximum.accumulate([t.value for t in order]), where="post",
                color="C1", label="best so far")
    if card is not None:
        ax.axhline(card, color="C2", linestyle="--", linewidth=1, label=f"current card ({card:.3f})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (normalised AUC − collapse penalty)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("optimisation history")
    return save_figure(fig, out, dpi=110)[0]


def importances(study) -> tuple[dict, str]:
    """Parameter importances (fANOVA where scikit-learn is installed, else PED-ANOVA) and the method."""
    import optuna  # heavy; loaded only when tuning

    for name, make in (("fANOVA", optuna.importance.FanovaImportanceEvaluator),
                       ("PED-ANOVA", optuna.importance.PedAnovaImportanceEvaluator)):
        try:
            with warnings.catch_warnings():  # PED-ANOVA warns when few trials make all importances equal
                warnings.simplefilter("ignore")
                return optuna.importance.get_param_importances(study, evaluator=make()), name
        except ImportError:
            continue
        except (RuntimeError, ValueError, ZeroDivisionError) as e:
            return {}, f"not available ({str(e).splitlines()[0][:100]})"
    return {}, "not available"


def _importance_figure(values: dict, method: str, out: Path) -> Path:
    matplotlib.use("Agg")

    names = list(values)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.4))
    ax.barh(names, [values[n] for n in names])
    ax.set_xlabel(f"importance ({method})")
    ax.set_title("parameter importances")
    ax.grid(alpha=0.3, axis="x")
    return save_figure(fig, out, dpi=110)[0]


def write_hparams(settings: TuneSettings, tune_dir: Path, trials) -> int:
    """One TensorBoard HParams entry per complete trial (tensorboard --logdir TUNE_DIR/tensorboard)."""
    from optuna.trial import TrialState  # heavy; loaded only when tuning

    written = 0
    for t in trials:
        folder = tune_dir / "tensorboard" / f"trial-{t.number:04d}"
        if t.state != TrialState.COMPLETE or folder.exists():
            continue
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in t.params.items()}
        finals = t.user_attrs.get("finals") or []
        with SummaryWriter(str(folder)) as writer:
            writer.add_hparams(hparams, {"tune/objective": t.value, "tune/mean_final": float(np.mean(finals)) if finals else 0.0,
                                         "tune/stays_solved": t.user_attrs.get("stays_solved", 0) / len(settings.seeds)},
                               run_name=".")
        written += 1
    return written


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(tune_dir: str | Path) -> Path:
    """report.md, best.yaml and the figures from what the tune directory holds now."""
    from optuna.trial import TrialState  # heavy; loaded only when tuning

    tune_dir = Path(tune_dir)
    settings = load_settings(tune_dir)
    study = open_study(settings, must_exist=True)
    trials = study.get_trials(deepcopy=False)
    c = counts(study)
    complete = sorted([t for t in trials if t.state == TrialState.COMPLETE], key=lambda t: -t.value)
    card = card_score(settings, tune_dir, trials)
    seeds = f"{settings.seeds[0]}-{settings.seeds[-1]}" if len(settings.seeds) > 1 else str(settings.seeds[0])
    masked = re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", settings.storage)  # no database password in a report
    if settings.storage == storage_url(None, tune_dir):
        masked = "study.journal (in the study folder)"
    lines = [f"# Tuning {settings.agent} on {settings.env_id}", "",
             f"Study: `{tune_dir}` · storage `{masked}` · hardware: {hardware()}  ",
             f"Each trial: seeds {seeds}, {settings.steps:,} steps per seed; fixed: "
             f"{', '.join(f'{k}={v}' for k, v in settings.fixed.items()) or 'nothing'}; pruner: {settings.pruner}; "
             f"sampler: TPE (seed {settings.sampler_seed})  ",
             f"Objective: mean over seeds of the area under the evaluation curve normalised between a random "
             f"policy ({settings.floor:.1f}) and the threshold ({settings.threshold:g}), minus "
             f"{settings.collapse_penalty:g} × the fraction of seeds whose final 20-episode evaluation is below the "
             f"threshold. 1 = solved from the first step on every seed{cost_sentence(settings)}.", "",
             f"**{progress_line(settings, c, None)}**", ""]
    best = complete[0] if complete else None
    if best is not None:
        finals = ", ".join(f"{f:.1f}" for f in best.user_attrs.get("finals", []))
        comment = (f"rlsuite tune {settings.agent} {settings.env_id}: trial {best.number}, objective {best.value:.3f} "
                   f"on seeds {seeds} (finals {finals}), {settings.steps:,} steps")
        entry = card_entry(settings, best.params, comment)
        atomic_write_text(tune_dir / "best.yaml", entry)
        lines += [f"## Best trial: {best.number} (objective {best.value:.3f}; finals {finals})", ""]
        best_runs = best.user_attrs.get("runs", [])
        if best_runs and (tune_dir / "runs").exists():  # a glob `compare` / `plot` take: runs differ only in seed
            stem = Path(best_runs[0]).name.rsplit("-s", 1)[0]
            lines += [f"Its runs: `{tune_dir / 'runs' / stem}-s*`", ""]
        if card is not None:
            lines += [f"Current card on the same seeds: objective {card[0]:.3f}, finals "
                      f"{', '.join(f'{f:.1f}' for f in card[1])}.", ""]
        lines += ["Card entry (`best.yaml`):", "", "```yaml", entry.rstrip(), "```", ""]
        if card is not None:
            runs_best = best.user_attrs.get("runs", [])
            labels = {**{d: f"best (trial {best.number})" for d in runs_best}, **{d: "current card" for d in card[2]}}
            figure = tune_dir / "best_vs_card.png"
            if all((Path(d) / "metrics.csv").exists() for d in labels):
                figure = plot_curves(list(labels), tune_dir / "best_vs_card", labels=labels,
                                     title=f"{settings.agent} on {settings.env_id}: best trial vs current card, "
                                           f"seeds {seeds}").paths[0]
            if figure.exists():  # a published copy without the runs keeps the figure it was published with
                lines += [f"![best vs card]({figure.name})", ""]
    else:
        lines += ["No trial has completed yet.", ""]
    if trials:
        lines += [f"![history]({_history_figure(trials, card[0] if card else None, tune_dir / 'history').name})", ""]
    values, method = importances(study) if len(complete) >= 2 else ({}, "needs two complete trials")
    if values:
        lines += [f"![importances]({_importance_figure(values, method, tune_dir / 'importances').name})", ""]
        lines += ["Importances (" + method + "): " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()), ""]
    else:
        lines += [f"Importances: {method}.", ""]
    names = list(settings.space)
    lines += ["## Trials (best first; pruned and failed after)", "",
              "| trial | state | objective | finals | cost | " + " | ".join(names) + " | note |",
              "|" + "---|" * (len(names) + 6)]
    others = sorted([t for t in trials if t.state != TrialState.COMPLETE], key=lambda t: t.number)
    for t in complete + others:
        state = "interrupted" if t.user_attrs.get("interrupted") else t.state.name.lower()
        value = f"{t.value:.3f}" if t.value is not None else "—"
        finals = ", ".join(f"{f:.0f}" for f in t.user_attrs.get("finals", [])) or "—"
        note = t.user_attrs.get("error", "") or ("the current card" if t.user_attrs.get("card") else "")
        if t.state == TrialState.PRUNED and t.intermediate_values:
            step = max(t.intermediate_values)
            note = f"pruned at seed {settings.seeds[step // settings.steps]} step {step % settings.steps:,}"
        cost = f"{t.user_attrs['cost']:.3g}" if "cost" in t.user_attrs else "—"
        lines.append(f"| {t.number} | {state} | {value} | {finals} | {cost} | " + " | ".join(_fmt(t.params.get(n, "—")) for n in names)
                     + f" | {note.replace('|', '/')} |")
    if (tune_dir / "runs").exists():
        write_hparams(settings, tune_dir, trials)  # workers write them as trials finish; this fills any gap
        hp = len(list((tune_dir / "tensorboard").glob("trial-*"))) if (tune_dir / "tensorboard").exists() else 0
        lines += ["", f"TensorBoard HParams: `tensorboard --logdir {tune_dir / 'tensorboard'}` ({hp} complete trials). "
                  f"Trial runs are ordinary run directories under `{tune_dir / 'runs'}`: `rlsuite plot`, "
                  "`rlsuite compare` (groups of runs) and `rlsuite eval` take them.", ""]
    else:
        lines += ["", "This folder holds the study without its trial runs (a published copy: report, figures, "
                  "best.yaml, tune.json and the journal), so `rlsuite tune show` reads it but the runs, their curves "
                  "and the TensorBoard logs stay where the study ran.", ""]
    report = tune_dir / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report


def show(tune_dir: str | Path) -> list[str]:
    """`rlsuite tune show DIR`: the report regenerated, and its head and card entry as text."""
    tune_dir = Path(tune_dir)
    settings = load_settings(tune_dir)
    report = write_report(tune_dir)
    c = counts(open_study(settings, must_exist=True))
    out = [progress_line(settings, c, None)]
    if c.best is not None and math.isfinite(c.best[0]):
        out += ["", (tune_dir / "best.yaml").read_text().rstrip()]
    out += ["", f"report: {report}"]
    return out
