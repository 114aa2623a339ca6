"""Reward curves from run directories: mean across seeds with a 95% bootstrap band, against
environment steps and against training wall-clock seconds, the solve threshold as a line."""

from __future__ import annotations

import json
import os
from collections import defaultdict
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import bootstrap, trim_mean

from rlsuite.core.errors import UserError, close_matches
from rlsuite.run.rundir import csv_rows, read_run_config, read_status, resolve_run, suggest_runs


def expand_run_dirs(paths) -> list[Path]:
    """Run directories from the given paths: each is a run (has config.yaml) or a folder holding runs."""
    out: list[Path] = []
    for p in map(resolve_run, paths):
        if not p.exists():
            raise UserError(f"{p} does not exist{suggest_runs(p)}")
        if (p / "config.yaml").exists():
            out.append(p)
            continue
        found = sorted(c.parent for c in p.glob("*/config.yaml")) or sorted(c.parent for c in p.glob("runs/*/config.yaml"))
        if not found:
            raise UserError(f"{p} is not a run directory and holds none (no config.yaml)")
        out.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in out))  # a run given twice is still one seed
    return [next(p for p in out if p.resolve() == u) for u in unique]


def usable_runs(run_dirs: list[Path]) -> tuple[list[Path], list[str]]:
    """(runs that can be plotted, one warning per run skipped): a failed run, or one with no evaluation
    yet, is left out instead of refusing the whole folder."""
    keep, warnings = [], []
    for d in run_dirs:
        status = read_status(d)
        if status["status"] == "failed":
            warnings.append(f"skipping {d}: the run failed ({status.get('error', 'see status.json')})")
            continue
        try:
            load_curve(d)
        except UserError as e:
            warnings.append(f"skipping {d}: {e}")
            continue
        keep.append(d)
    return keep, warnings


def load_curve(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        raise UserError(f"{run_dir} holds no metrics.csv; it is not a finished or running rlsuite run")
    rows = [r for r in csv_rows(metrics, required=("step", "wall_s", "eval_mean")) if r.get("eval_mean")]
    if not rows:
        raise UserError(f"{run_dir}/metrics.csv has no evaluation rows yet; train longer than eval_every")
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except (ValueError, OSError):
        raise UserError(f"{summary_path} is corrupt (not JSON)") from None
    if not isinstance(summary, dict):
        raise UserError(f"{summary_path} is corrupt (not a JSON object)")
    try:
        steps, wall, mean = (np.array([float(r[k]) for r in rows]) for k in ("step", "wall_s", "eval_mean"))
    except (TypeError, ValueError):
        raise UserError(f"{metrics} has a value that is not a number in step, wall_s or eval_mean; it is corrupt") from None
    if not (np.isfinite(steps).all() and np.isfinite(wall).all() and np.isfinite(mean).all()):
        raise UserError(f"{metrics} has NaN/Inf in step, wall_s or eval_mean; it is corrupt")
    return {
        "implementation": config.get("implementation", "rlsuite"), "agent": config["agent"],
        "env_id": config.get("env_id"), "seed": config["seed"], "threshold": summary.get("threshold"),
        "steps": steps, "wall": wall, "mean": mean, "fields": run_fields(config),
    }


# Fields that differ between the seeds of one experiment without making it another one: the seed, the budget, how
# it is evaluated, checkpointed and run, and the env card's prose (as runs._experiment ignores them).
PER_RUN_FIELDS = ("seed", "total_steps", "device", "eval_every", "eval_episodes", "final_eval_episodes",
                  "checkpoint_every", "checkpoint_minutes", "save_buffer", "video_every", "log_every", "torch_threads",
                  "env.notes", "env.budget", "env.threshold_source", "env.vectorization")


def run_fields(config: dict) -> dict:
    """Every field a run can be grouped by: its hyperparameters (config.yaml's config, and an SB3 run's own), its env
    card's fields as env.FIELD, agent, implementation and env_id; values as short text."""
    def text(v):
        return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)

    env_card = config.get("env_card") if isinstance(config.get("env_card"), dict) else {}
    baseline = config.get("baseline") if isinstance(config.get("baseline"), dict) else {}
    library = baseline.get("hyperparameters") if isinstance(baseline.get("hyperparameters"), dict) else {}
    fields = {f"env.{k}": text(v) for k, v in env_card.items()}
    fields.update({k: text(v) for k, v in (config.get("config") or {}).items()})
    fields.update({k: text(v) for k, v in library.items()})
    fields.update({"agent": config["agent"], "implementation": config.get("implementation", "rlsuite"),
                   "env_id": text(config.get("env_id"))})
    return fields


def field_name(name: str, known) -> str:
    """A --group name as run_fields keys it: an env-card field may be given bare (frame_stack for env.frame_stack)."""
    return name if name in known or f"env.{name}" not in known else f"env.{name}"


def differing_fields(curves: list[dict]) -> list[str]:
    """The fields whose values differ between runs of one implementation and agent: what makes them more than
    seeds of one experiment (PER_RUN_FIELDS aside; a field some runs lack, e.g. one added since, is no difference)."""
    out = []
    for name in sorted({k for c in curves for k in c["fields"]} - set(PER_RUN_FIELDS)):
        if name in ("agent", "implementation", "env_id", "env.id"):
            continue
        for key in {(c["implementation"], c["agent"]) for c in curves}:
            members = [c for c in curves if (c["implementation"], c["agent"]) == key]
            if any(name not in c["fields"] for c in members):
                continue
            if len({c["fields"][name] for c in members}) > 1:
                out.append(name)
                break
    return out


def group_label(curve: dict, group_by: list[str]) -> str:
    return " ".join([f"{curve['implementation']} {curve['agent']}",
                     *(f"{name}={curve['fields'].get(name, '-')}" for name in group_by)])


def _iqm(x, axis=0):
    return trim_mean(x, 0.25, axis=axis)


STATISTICS = {"mean": np.mean, "iqm": _iqm}


def _band(matrix: np.ndarray, stat: str = "mean"):
    """STAT (mean or IQM) over seeds (axis 0) and a 95% percentile-bootstrap band per x (scipy, vectorised)."""
    statistic = STATISTICS[stat]
    mean = statistic(matrix, axis=0)
    if matrix.shape[0] < 2:
        return mean, mean, mean

    res = bootstrap((matrix,), statistic, axis=0, confidence_level=0.95, method="percentile",
                    n_resamples=2000, random_state=np.random.default_rng(0))
    low = np.where(np.isnan(res.confidence_interval.low), mean, res.confidence_interval.low)
    high = np.where(np.isnan(res.confidence_interval.high), mean, res.confidence_interval.high)
    return mean, low, high


def _draw(ax, members: list[dict], x: str, stat: str, label: str, color=None):
    """One group's curve (STAT across its seeds) and 95% band against x ('steps' or 'wall'); its colour."""
    # From the point where every seed has evaluated once: np.interp would otherwise hold a seed's first
    # evaluation flat back to x = 0, a curve drawn where nothing was measured.
    start = max(c[x].min() for c in members)
    if x == "steps":  # every evaluation step any seed has
        grid = np.unique(np.concatenate([c["steps"] for c in members]))
        grid = grid[grid >= start]
    else:  # seeds evaluate at different wall-clock times: a common grid
        grid = np.linspace(start, max(c["wall"].max() for c in members), 200)
    centre, low, high = _band(np.stack([np.interp(grid, c[x], c["mean"]) for c in members]), stat)
    line, = ax.plot(grid, centre, label=label, color=color)
    ax.fill_between(grid, low, high, alpha=0.25, color=line.get_color())
    return line.get_color()


def _clip_early_crashes(ax, threshold) -> bool:
    """A few early evaluations far below everything else (LunarLander's first crashes at -3000) squash
    the panel: start the y axis near the bulk of the curves instead. True when it did."""
    curves = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines() if line.get_linestyle() != "--"]
    if not curves:
        return False
    values = np.concatenate(curves)  # the curves, not the dashed threshold line
    low, top = np.percentile(values, 5), max(values.max(), threshold if threshold is not None else -np.inf)
    span = max(top - low, 1e-9)
    if values.min() >= low - 2 * span:
        return False
    ax.set_ylim(bottom=low - 0.25 * span)
    return True


IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


def save_figure(fig, out: Path, dpi: int) -> list[Path]:
    """OUT as PNG, PDF or SVG by its suffix (OUT.png without one), folders made as needed; the figure is closed."""

    fig.tight_layout()
    out = Path(out)
    out = out if out.suffix.lower() in IMAGE_SUFFIXES else out.with_suffix(".png")
    paths = [out]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for p in paths:  # via a temporary file: a reader (or a second benchmark process) never sees half
            tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp{p.suffix}")
            try:
                fig.savefig(tmp, dpi=dpi)
                os.replace(tmp, p)
            finally:
                tmp.unlink(missing_ok=True)
    except (OSError, UnicodeEncodeError) as e:
        raise UserError(f"cannot write {out} ({getattr(e, 'strerror', None) or e}); "
                        "choose a writable -o path") from None
    finally:
        plt.close(fig)
    return paths


def plot_grid(cells: dict, out: Path, title: str, stat: str = "mean") -> list[Path]:
    """An overview: one panel per (row, column) key of CELLS, each {label: [run dirs]} drawn against
    environment steps with its threshold. Writes OUT.png."""

    matplotlib.use("Agg")

    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.2 * len(rows)), squeeze=False)
    colors = {}
    for (row, col), groups in cells.items():
        ax = axes[rows.index(row)][cols.index(col)]
        threshold = None
        for label, dirs in groups.items():
            members = [load_curve(d) for d in dirs]
            colors[label] = _draw(ax, members, "steps", stat, f"{label} (n={len(members)})", colors.get(label))
            threshold = next((c["threshold"] for c in members if c["threshold"] is not None), threshold)
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        clipped = _clip_early_crashes(ax, threshold)
        ax.set_title(f"{row} on {col}" + (" (y axis clipped)" if clipped else ""), fontsize=10)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.set_ylabel("evaluation return", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for r, row in enumerate(rows):  # panels the grid has no runs for stay empty
        for c, col in enumerate(cols):
            if (row, col) not in cells:
                axes[r][c].axis("off")
    fig.suptitle(title)
    return save_figure(fig, out, dpi=100)


@dataclass
class Figure:
    paths: list  # the PNG, then the SVG
    labels: list  # one per curve drawn
    grouped_by: list = dataclasses.field(default_factory=list)  # the fields the curves are split by


def plot_curves(run_dirs, out: Path, title: str | None = None, labels: dict | None = None,
                stat: str = "mean", group_by: list[str] | None = None) -> Figure:
    """Write OUT.png: one curve per (implementation, agent) group and value of each `group_by` field — or per
    label when `labels` maps each run directory to one (e.g. 'rlsuite@zoo') — one env per figure. Without either,
    runs whose configurations differ in more than the seed are grouped by the differing fields (Figure.grouped_by
    says which), never merged into one curve. STAT across seeds: 'mean' or 'iqm' (interquartile mean), each with
    its 95% bootstrap band."""
    if stat not in STATISTICS:
        raise UserError(f"unknown statistic {stat!r}; use mean or iqm")

    matplotlib.use("Agg")

    curves = [load_curve(d) for d in run_dirs]
    if not curves:
        raise UserError("no run directories to plot")
    if group_by:
        known = {k for c in curves for k in c["fields"]}
        group_by = [field_name(name, known) for name in group_by]
        for name in group_by:
            if name not in known:
                raise UserError(f"--group {name!r} is not a field of these runs{close_matches(name, known)}; give a "
                                "hyperparameter (lr, n_steps, ...), an env-card field, agent, implementation or env_id")
    elif not labels:
        group_by = differing_fields(curves)
    for c, d in zip(curves, run_dirs):
        c["label"] = labels[str(d)] if labels else group_label(c, group_by or [])
    envs = sorted({c["env_id"] for c in curves})
    if len(envs) > 1:
        raise UserError(f"these runs mix environments ({', '.join(envs)}); plot one env at a time or use --group env_id")
    groups: dict[str, list] = defaultdict(list)
    for c in curves:
        groups[c["label"]].append(c)
    fig, (ax_steps, ax_wall) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = []
    for key, members in sorted(groups.items()):
        label = f"{key} (n={len(members)})"
        labels.append(label)
        color = _draw(ax_steps, members, "steps", stat, label)
        _draw(ax_wall, members, "wall", stat, label, color)
    threshold = next((c["threshold"] for c in curves if c["threshold"] is not None), None)
    for ax, xlabel in ((ax_steps, "environment steps"), (ax_wall, "training wall-clock (s, evaluation excluded)")):
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return (mean of episodes)")
        ax.grid(alpha=0.3)
    ax_steps.legend(fontsize=8, loc="best")
    what = "mean" if stat == "mean" else "IQM"
    fig.suptitle(title or f"{envs[0]}: evaluation return, {what} and 95% bootstrap band across seeds")
    return Figure(save_figure(fig, out, dpi=110), labels, list(group_by or []))
