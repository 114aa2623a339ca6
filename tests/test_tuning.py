"""Search spaces as data and the tuning objective (issue 10's groundwork)."""

import numpy as np
import pytest

from rlsuite.agents.dqn import DQNConfig
from rlsuite.agents.pg import PPOConfig
from rlsuite.errors import UserError
from rlsuite.tuning import Distribution, objective, parse_space


class FakeTrial:
    """Records what was asked; answers the low end (or the first choice)."""

    def __init__(self):
        self.asked = []

    def suggest_float(self, name, low, high, log=False):
        self.asked.append(("float", name, low, high, log))
        return low

    def suggest_int(self, name, low, high, log=False):
        self.asked.append(("int", name, low, high, log))
        return low

    def suggest_categorical(self, name, choices):
        self.asked.append(("categorical", name, tuple(choices)))
        return choices[0]


def test_each_distribution_type_parses_and_suggests():
    space = parse_space({"lr": {"loguniform": [1e-4, 1e-2]}, "gamma": {"uniform": [0.95, 0.999]},
                         "n_steps": {"int": [8, 256], "log": True}, "batch_size": {"categorical": [32, 64]}},
                        PPOConfig, "card")
    assert space["lr"] == Distribution("loguniform", 1e-4, 1e-2)
    assert space["n_steps"] == Distribution("int", 8, 256, log=True)
    trial = FakeTrial()
    values = {name: d.suggest(trial, name) for name, d in space.items()}
    assert values == {"lr": 1e-4, "gamma": 0.95, "n_steps": 8, "batch_size": 32}
    assert ("float", "lr", 1e-4, 1e-2, True) in trial.asked and ("int", "n_steps", 8, 256, True) in trial.asked


@pytest.mark.parametrize("spec, fragment", [
    ({"lrr": {"uniform": [0, 1]}}, "lrr: unknown field (did you mean: lr"),
    ({"lr": {"gaussian": [0, 1]}}, "unknown distribution 'gaussian'"),
    ({"lr": {"uniform": [1e-2, 1e-4]}}, "low < high"),
    ({"lr": {"loguniform": [0, 1e-2]}}, "a log scale needs low > 0"),
    ({"lr": {"uniform": [0.1]}}, "uniform needs [low, high]"),
    ({"lr": {"uniform": ["a", "b"]}}, "bounds must be numbers"),
    ({"lr": {"uniform": [0, "inf"]}}, "finite bounds"),
    ({"batch_size": {"int": [8.5, 64]}}, "int bounds must be integers"),
    ({"lr": {"int": [1, 4]}}, "lr is not an integer field"),
    ({"batch_size": {"uniform": [8, 64]}}, "batch_size is not a number field"),
    ({"double": {"categorical": []}}, "non-empty list of choices"),
    ({"double": {"categorical": [True, "maybe"]}}, "is not a boolean"),
    ({"lr": "1e-3"}, "give one distribution"),
    ({"lr": {"uniform": [0, 1], "loguniform": [1, 2]}}, "give one distribution"),
    ([], "a search space is a mapping"),
])
def test_bad_spaces_are_one_line_errors(spec, fragment):
    with pytest.raises(UserError, match=None) as e:
        parse_space(spec, DQNConfig, "agents/dqn.yaml [tune]")
    assert fragment in str(e.value) and str(e.value).startswith("agents/dqn.yaml [tune]") and "\n" not in str(e.value)


def test_objective_prefers_the_steady_recipe_to_the_collapsing_one():
    steps = np.arange(0, 11) * 1000.0
    steady = np.array([10, 100, 300, 475, 480, 490, 500, 500, 500, 500, 500], float)
    collapses = np.array([10, 300, 500, 500, 500, 500, 500, 500, 120, 40, 20], float)  # earlier, then falls
    never = np.full(11, 10.0)
    both_steady = objective([(steps, steady), (steps, steady)], [500, 500], 475)
    one_collapses = objective([(steps, steady), (steps, collapses)], [500, 20], 475)
    assert both_steady > one_collapses
    # by hand for one seed: the normalised level (clipped) integrated over steps, /10,000
    level = np.clip((steady - 10) / (475 - 10), 0, 1)
    assert objective([(steps, steady)], [500], 475) == pytest.approx(np.trapezoid(level, steps) / 10_000)
    assert objective([(steps, never)], [10], 475) == pytest.approx(0.0 - 0.5)  # nothing learned, and penalised
    with pytest.raises(ValueError):
        objective([(steps, steady)], [], 475)
