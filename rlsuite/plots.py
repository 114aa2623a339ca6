"""Reward curves from run directories: mean across seeds with a 95% bootstrap band, against
environment steps and against training wall-clock seconds, the solve threshold as a line."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlsuite.engine import csv_rows, read_run_config
from rlsuite.errors import UserError


def expand_run_dirs(paths) -> list[Path]:
    """Run directories from the given paths: each is a run (has config.yaml) or a folder holding runs."""
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"{p} does not exist")
        if (p / "config.yaml").exists():
            out.append(p)
            continue
        found = sorted(c.parent for c in p.glob("*/config.yaml")) or sorted(c.parent for c in p.glob("runs/*/config.yaml"))
        if not found:
            raise UserError(f"{p} is not a run directory and holds none (no config.yaml)")
        out.extend(found)
    return out


def load_curve(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        raise UserError(f"{run_dir} holds no metrics.csv; it is not a finished or running rlsuite run")
    rows = [r for r in csv_rows(metrics) if r.get("eval_mean")]
    if not rows:
        raise UserError(f"{run_dir}/metrics.csv has no evaluation rows yet; train longer than eval_every")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return {
        "implementation": config.get("implementation", "rlsuite"), "agent": config["agent"],
        "env_id": config["env_id"], "seed": config["seed"], "threshold": summary.get("threshold"),
        "steps": np.array([float(r["step"]) for r in rows]), "wall": np.array([float(r["wall_s"]) for r in rows]),
        "mean": np.array([float(r["eval_mean"]) for r in rows]),
    }


def _band(matrix: np.ndarray):
    """Mean over seeds (axis 0) and a 95% percentile-bootstrap band per x (scipy, vectorised)."""
    mean = matrix.mean(axis=0)
    if matrix.shape[0] < 2:
        return mean, mean, mean
    from scipy.stats import bootstrap

    res = bootstrap((matrix,), np.mean, axis=0, confidence_level=0.95, method="percentile",
                    n_resamples=2000, random_state=np.random.default_rng(0))
    low = np.where(np.isnan(res.confidence_interval.low), mean, res.confidence_interval.low)
    high = np.where(np.isnan(res.confidence_interval.high), mean, res.confidence_interval.high)
    return mean, low, high


@dataclass
class Figure:
    paths: list  # the PNG, then the SVG
    labels: list  # one per curve drawn


def plot_curves(run_dirs, out: Path, title: str | None = None, labels: dict | None = None) -> Figure:
    """Write OUT.png and OUT.svg: one curve per (implementation, agent) group — or per label when
    `labels` maps each run directory to one (e.g. 'rlsuite@zoo') — one env per figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [load_curve(d) for d in run_dirs]
    for c, d in zip(curves, run_dirs):
        c["label"] = labels[str(d)] if labels else f"{c['implementation']} {c['agent']}"
    if not curves:
        raise UserError("no run directories to plot")
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
        grid = np.unique(np.concatenate([c["steps"] for c in members]))
        mean, low, high = _band(np.stack([np.interp(grid, c["steps"], c["mean"]) for c in members]))
        line, = ax_steps.plot(grid, mean, label=label)
        ax_steps.fill_between(grid, low, high, alpha=0.25, color=line.get_color())
        wall_grid = np.linspace(0, max(c["wall"].max() for c in members), 200)
        mean, low, high = _band(np.stack([np.interp(wall_grid, c["wall"], c["mean"]) for c in members]))
        ax_wall.plot(wall_grid, mean, label=label, color=line.get_color())
        ax_wall.fill_between(wall_grid, low, high, alpha=0.25, color=line.get_color())
    threshold = next((c["threshold"] for c in curves if c["threshold"] is not None), None)
    for ax, xlabel in ((ax_steps, "environment steps"), (ax_wall, "training wall-clock (s, evaluation excluded)")):
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return (mean of episodes)")
        ax.grid(alpha=0.3)
    ax_steps.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"{envs[0]}: evaluation return, mean and 95% bootstrap band across seeds")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=110)
    plt.close(fig)
    return Figure(paths, labels)
