"""Hyperparameter search, the pieces that are pure data and arithmetic (issue 10's groundwork):
search spaces written as data in an agent card's `tune:` section, and the objective a trial is scored
by. The study loop (Optuna, storage, pruning, workers) builds on these.

A space maps card fields to distributions, never code:

    tune:
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      gamma: {uniform: [0.95, 0.999]}
      n_steps: {int: [8, 256], log: true}
      batch_size: {categorical: [32, 64, 128]}
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlsuite.cards import Schedule, coerce
from rlsuite.errors import UserError, close_matches

KINDS = ("uniform", "loguniform", "int", "categorical")


@dataclass(frozen=True)
class Distribution:
    """One field's search distribution: uniform / loguniform floats, integers (optionally on a log
    scale) in [low, high], or a list of choices."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial, name: str):
        """The value an Optuna trial proposes for `name`."""
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.kind == "loguniform")


def parse_space(data: Any, config_cls, source: str) -> dict[str, Distribution]:
    """{field: Distribution} from a `tune:` mapping; every mistake is one line naming `source`."""
    if not isinstance(data, dict) or not data:
        raise UserError(f"{source}: a search space is a mapping of fields to distributions, e.g. "
                        "{lr: {loguniform: [1.0e-4, 1.0e-2]}}")
    names = [f.name for f in dataclasses.fields(config_cls)]
    hints = typing.get_type_hints(config_cls)
    space = {}
    for field, spec in data.items():
        where = f"{source}: {field}"
        if field not in names:
            raise UserError(f"{where}: unknown field{close_matches(str(field), names)}")
        if not isinstance(spec, dict) or not (set(spec) - {"log"}) or len(set(spec) - {"log"}) != 1:
            raise UserError(f"{where}: give one distribution, e.g. {{loguniform: [low, high]}} or "
                            "{categorical: [a, b]}")
        kind = next(iter(set(spec) - {"log"}))
        if kind not in KINDS:
            raise UserError(f"{where}: unknown distribution '{kind}'{close_matches(str(kind), KINDS)}; "
                            f"use {', '.join(KINDS)}")
        args = spec[kind]
        if kind == "categorical":
            if not isinstance(args, list) or not args:
                raise UserError(f"{where}: categorical needs a non-empty list of choices")
            for choice in args:  # each choice must be a valid value of the field
                _check_value(config_cls, field, choice, where)
            space[field] = Distribution("categorical", choices=tuple(args))
            continue
        if not isinstance(args, list) or len(args) != 2:
            raise UserError(f"{where}: {kind} needs [low, high]")
        try:
            low, high = (float(a) for a in args)
        except (TypeError, ValueError):
            raise UserError(f"{where}: {kind} bounds must be numbers, got {args}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise UserError(f"{where}: {kind} needs finite bounds with low < high, got {args}")
        log = bool(spec.get("log", False))
        if (kind == "loguniform" or log) and low <= 0:
            raise UserError(f"{where}: a log scale needs low > 0, got {args}")
        kind_of_field = hints[field]
        if kind == "int":
            if not (low.is_integer() and high.is_integer()):
                raise UserError(f"{where}: int bounds must be integers, got {args}")
            if kind_of_field not in (int, int | None, typing.Optional[int]):
                raise UserError(f"{where}: {field} is not an integer field; use uniform or loguniform")
        elif kind_of_field not in (float, Schedule, float | None, typing.Optional[float]):
            raise UserError(f"{where}: {field} is not a number field; use int or categorical")
        for bound in (low, high):  # the bounds themselves must be valid values (ranges are checked later)
            _check_value(config_cls, field, int(bound) if kind == "int" else bound, where)
        space[field] = Distribution(kind, low, high, log=log)
    return space


def _check_value(config_cls, field: str, value, where: str) -> None:
    try:
        coerce(config_cls, field, value)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def objective(curves: list[tuple[np.ndarray, np.ndarray]], final: list[float], threshold: float,
              collapse_penalty: float = 0.5) -> float:
    """The score of one trial over its K seeds, higher is better, in [-collapse_penalty, 1]:

      mean over seeds of the normalised area under the evaluation curve
      - collapse_penalty × (fraction of seeds whose final evaluation is below the threshold)

    Each seed's curve (steps, evaluation means) is normalised between its own first evaluation (the
    untrained policy) and the threshold, clipped to [0, 1], and averaged over the training steps, so
    that solving early scores more than solving late. The penalty makes a recipe that works on every
    seed beat one whose lucky seeds solve and whose others collapse."""
    if not curves or len(curves) != len(final):
        raise ValueError("one curve and one final evaluation per seed")
    areas = []
    for steps, means in curves:
        steps, means = np.asarray(steps, float), np.asarray(means, float)
        floor = means[0]
        span = threshold - floor
        level = np.ones_like(means) if span <= 0 else np.clip((means - floor) / span, 0.0, 1.0)
        if len(steps) < 2:
            areas.append(float(level.mean()))
            continue
        areas.append(float(np.trapezoid(level, steps) / (steps[-1] - steps[0])))
    collapsed = sum(f < threshold for f in final) / len(final)
    return float(np.mean(areas)) - collapse_penalty * collapsed
