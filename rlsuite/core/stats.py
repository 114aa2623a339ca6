"""Per-run solve statistics (docs/protocol.md) read from metrics rows."""

from __future__ import annotations

import math

import numpy as np


def solve_stats(eval_rows: list[dict], final_mean: float | None, threshold: float | None) -> dict:
    """steps-to-solve / wall-to-solve (first evaluation with mean >= threshold), solved, stays-solved.

    `eval_rows` hold 'step', 'wall_s', 'eval_mean' in step order. A run that reached the threshold
    but whose final evaluation is below it is 'solved then collapsed', not stays-solved.
    """
    out = {"threshold": threshold, "steps_to_solve": None, "wall_to_solve": None,
           "solved": False, "stays_solved": False}
    if threshold is None:
        return out
    for row in eval_rows:
        mean = float(row["eval_mean"])
        if not math.isnan(mean) and mean >= threshold:
            out.update(steps_to_solve=int(row["step"]), wall_to_solve=float(row["wall_s"]), solved=True)
            break
    out["stays_solved"] = final_mean is not None and final_mean >= threshold
    return out


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's trim_mean, 25% cut each side)."""
    from scipy.stats import trim_mean  # heavy (over a second): every run imports this module, few need it

    return float(trim_mean(np.asarray(values, dtype=float), 0.25))


def bootstrap_ci(values, statistic=None, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` (default IQM) with scipy.stats.bootstrap."""
    from scipy.stats import bootstrap, trim_mean  # heavy (over a second): see iqm

    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean())
    stat = statistic or (lambda a, axis: trim_mean(a, 0.25, axis=axis))
    res = bootstrap((x,), stat, confidence_level=confidence, method="percentile", n_resamples=10_000,
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def aggregate(summaries: list[dict]) -> dict:
    """docs/protocol.md aggregates over the seeds of one (implementation, agent, env)."""
    n = len(summaries)
    finals = [s["final_eval"]["mean"] for s in summaries]
    budget = max(s["steps"] for s in summaries)
    # unsolved runs count as the budget (steps) / their whole training time (wall), and are marked
    steps_to_solve = [s["steps_to_solve"] if s["solved"] else budget for s in summaries]
    wall_to_solve = [s["wall_to_solve"] if s["solved"] else s["wall_s"] for s in summaries]
    low, high = bootstrap_ci(finals)
    return {
        "n": n,
        "solved": sum(s["solved"] for s in summaries),
        "stays_solved": sum(s["stays_solved"] for s in summaries),
        "collapsed": sum(s["solved"] and not s["stays_solved"] for s in summaries),
        "unsolved_marked": sum(not s["solved"] for s in summaries),
        "final_iqm": iqm(finals), "final_ci": (low, high), "finals": finals,
        "final_max_fraction": float(np.mean([f >= 500 for f in finals])),
        "median_steps_to_solve": float(np.median(steps_to_solve)),
        "median_wall_to_solve": float(np.median(wall_to_solve)),
        "median_steps_per_s": float(np.median([s["steps_per_s"] for s in summaries])),
    }
