"""Per-run solve statistics (PROTOCOL.md) read from metrics rows."""

from __future__ import annotations

import math


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
