"""Hyperparameter search, the pieces that are pure data and arithmetic:
search spaces written as data in an agent card's `tune:` section, and the objective a trial is scored
by. The study loop (Optuna, storage, pruning, workers) is rlsuite.tune.study.

A space maps card fields to distributions, never code:

    tune:
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      gamma: {uniform: [0.95, 0.999]}
      n_steps: {int: [8, 256], log: true}
      batch_size: {categorical: [32, 64, 128]}
      clip_range: {uniform: [0.1, 0.3], anneal: true}   # a schedule field: {linear: [value, 0]}
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlsuite.config.schema import Schedule, coerce
from rlsuite.core.errors import UserError, close_matches

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
    anneal: bool = False  # the value starts a linear schedule to 0 over training (schedule fields only)

    def suggest(self, trial, name: str):
        """The value an Optuna trial proposes for `name`."""
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.kind == "loguniform")

    def value(self, suggested):
        """The card value a suggestion stands for: itself, or with anneal {linear: [suggested, 0]}."""
        return {"linear": [suggested, 0.0]} if self.anneal else suggested

    def suggestion(self, card_value):
        """The inverse of value(): what to suggest to reproduce CARD_VALUE, or None when this space cannot
        express it (another schedule, a value outside the bounds or not among the choices)."""
        if isinstance(card_value, dict) or hasattr(card_value, "to_data"):
            data = card_value.to_data() if hasattr(card_value, "to_data") else card_value
            if isinstance(data, dict):
                args = data.get("linear", [])
                if not (self.anneal and len(args) == 2 and float(args[1]) == 0.0):
                    return None
                card_value = float(args[0])
            elif self.anneal:
                return None
            else:
                card_value = data
        elif self.anneal:
            return None
        if isinstance(card_value, (list, tuple)):
            card_value = ",".join(str(x) for x in card_value)
        if self.kind == "categorical":
            return card_value if card_value in self.choices else None
        if isinstance(card_value, bool) or not isinstance(card_value, (int, float)):
            return None
        return card_value if self.low <= card_value <= self.high else None


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
        options = {"log", "anneal"}
        if not isinstance(spec, dict) or not (set(spec) - options) or len(set(spec) - options) != 1:
            raise UserError(f"{where}: give one distribution, e.g. {{loguniform: [low, high]}} or "
                            "{categorical: [a, b]}")
        kind = next(iter(set(spec) - options))
        if kind not in KINDS:
            raise UserError(f"{where}: unknown distribution '{kind}'{close_matches(str(kind), KINDS)}; "
                            f"use {', '.join(KINDS)}")
        args = spec[kind]
        anneal = spec.get("anneal", False)
        if not isinstance(anneal, bool):
            raise UserError(f"{where}: anneal is true or false, got {anneal!r}")
        if anneal and (kind not in ("uniform", "loguniform") or hints[field] is not Schedule):
            raise UserError(f"{where}: anneal needs a uniform or loguniform distribution of a schedule field "
                            "(lr, clip_range, ...)")
        if kind == "categorical":
            if not isinstance(args, list) or not args:
                raise UserError(f"{where}: categorical needs a non-empty list of choices")
            for choice in args:  # each choice must be a valid value of the field
                _check_value(config_cls, field, choice, where)
            # Optuna stores choices as plain scalars: a list choice (e.g. hidden [64, 64]) travels as the
            # text --set would take ("64,64"), which the config reads back the same way.
            space[field] = Distribution("categorical", choices=tuple(
                ",".join(str(x) for x in c) if isinstance(c, list) else c for c in args))
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
        space[field] = Distribution(kind, low, high, log=log, anneal=anneal)
    return space


def check_space_ranges(space: dict[str, Distribution], config) -> None:
    """Each distribution's bounds (or choices) must be values the field accepts in CONFIG (the card with --set):
    gamma in [0.5, 1.5] would start trials that fail at 1.5. Only a field's own range is judged here; a value
    that clashes with another field (batch_size against the rollout) is left to the trial that samples both."""
    for field, dist in space.items():
        values = dist.choices if dist.kind == "categorical" else (dist.low, dist.high)
        for value in values:
            value = int(value) if dist.kind == "int" else value
            try:
                dataclasses.replace(config, **{field: coerce(type(config), field, value)}).validate()
            except UserError as e:
                if str(e).startswith(f"{field} must"):
                    raise UserError(f"search space {field}: {value!r} lies outside the field's range ({e}); "
                                    "narrow the distribution") from None


def _check_value(config_cls, field: str, value, where: str) -> None:
    try:
        coerce(config_cls, field, value)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def normalised_area(steps, means, threshold: float, floor: float, budget: float | None = None) -> float:
    """The area under one seed's evaluation curve, its returns normalised to [0, 1] between `floor` (a
    random policy's return) and `threshold`, averaged over the training steps [0, budget]: 1 means
    solved from the first step, 0 never better than random. The curve starts at (0, floor) (nothing is
    learned before training) and holds its last value to `budget` (default: its last step), so that
    solving early scores more than solving late."""
    steps = np.concatenate([[0.0], np.asarray(steps, float)])
    means = np.asarray(means, float)
    span = threshold - floor
    level = np.ones_like(means) if span <= 0 else np.clip((means - floor) / span, 0.0, 1.0)
    level = np.concatenate([[0.0], level])
    end = steps[-1] if budget is None else float(budget)
    if end <= 0:
        return 0.0
    if steps[-1] < end:
        steps, level = np.append(steps, end), np.append(level, level[-1])
    return float(np.trapezoid(level, steps) / end)


def objective(curves: list[tuple[np.ndarray, np.ndarray]], final: list[float], threshold: float, floor: float,
              budget: float | None = None, collapse_penalty: float = 0.5) -> float:
    """The score of one trial over its K seeds, higher is better, in [-collapse_penalty, 1]:

      mean over seeds of normalised_area(curve)  -  collapse_penalty × (fraction of seeds whose final
                                                    evaluation is below the threshold)

    The penalty makes a recipe that works on every seed beat one whose lucky seeds solve early and
    whose others collapse or never learn: tuning must reward what holds on every seed."""
    if not curves or len(curves) != len(final):
        raise ValueError("one curve and one final evaluation per seed")
    areas = [normalised_area(steps, means, threshold, floor, budget) for steps, means in curves]
    collapsed = sum(f < threshold for f in final) / len(final)
    return float(np.mean(areas)) - collapse_penalty * collapsed


# What a trial costs, per env step, for the objective's cost term (the user's choice; none turns it off).
COSTS = {"updates": "gradient steps per env step (from the trial's config: the same on every machine)",
         "cpu": "training CPU milliseconds per env step (measured: the machine's, and noisy)",
         "none": "no cost term"}
DEFAULT_COST, DEFAULT_COST_WEIGHT = "updates", 0.05  # a recipe 4× cheaper than the card is worth 0.1 of area


def cost_term(cost: float | None, reference: float, weight: float) -> float:
    """What a trial's cost takes off its objective: weight × log2(cost / reference). A recipe that costs twice
    the reference (the current card's cost, for `updates`) scores `weight` less, one that costs half scores
    `weight` more; the reference only shifts every trial alike, so it never changes which trial is best."""
    if cost is None or weight == 0:
        return 0.0
    return weight * math.log2(max(cost, 1e-9) / max(reference, 1e-9))


def cost_sentence(settings) -> str:
    """The cost term in words, for the study's first line and its report (empty without one)."""
    if settings.cost == "none" or not settings.cost_weight:
        return ""
    return (f"; minus {settings.cost_weight:g} × log2(cost / {settings.cost_reference:.4g}), cost = "
            f"{COSTS[settings.cost].split(' (')[0]}")


def running_score(curves: list[list[tuple[float, float]]], threshold: float, floor: float) -> float:
    """What a trial reports to the pruner while its seeds train (together, as one population): the mean over
    seeds of the area of each one's evaluation curve so far, [(step, mean), ...]. Two trials are compared at
    the same step, so a pruner sees like with like (the collapse penalty is only known at the end)."""
    areas = [normalised_area(*zip(*curve), threshold, floor) if curve else 0.0 for curve in curves]
    return float(np.mean(areas))
