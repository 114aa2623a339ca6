"""Search spaces as data and the tuning objective."""

import numpy as np
import pytest

from rlsuite.agents.dqn import DQNConfig
from rlsuite.agents.pg import PPOConfig
from rlsuite.core.errors import UserError
from rlsuite.tune.space import Distribution, normalised_area, objective, parse_space, running_score


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
    steps = np.arange(1, 11) * 1000.0   # evaluations every 1,000 steps; the curve starts at (0, floor)
    steady = np.array([100, 300, 475, 480, 490, 500, 500, 500, 500, 500], float)
    collapses = np.array([300, 500, 500, 500, 500, 500, 500, 120, 40, 20], float)  # earlier, then falls
    never = np.full(10, 10.0)
    both_steady = objective([(steps, steady), (steps, steady)], [500, 500], 475, floor=10)
    one_collapses = objective([(steps, steady), (steps, collapses)], [500, 20], 475, floor=10)
    assert both_steady > one_collapses
    # by hand for one seed: the normalised level (clipped) integrated over [0, 10,000], /10,000
    level = np.concatenate([[0.0], np.clip((steady - 10) / (475 - 10), 0, 1)])
    by_hand = np.trapezoid(level, np.concatenate([[0.0], steps])) / 10_000
    assert objective([(steps, steady)], [500], 475, floor=10) == pytest.approx(by_hand)
    assert objective([(steps, never)], [10], 475, floor=10) == pytest.approx(0.0 - 0.5)  # nothing learned, penalised
    # a budget beyond the last evaluation holds the last level: solved throughout the extra half
    assert objective([(steps, steady)], [500], 475, floor=10, budget=20_000) == pytest.approx((by_hand + 1) / 2)
    with pytest.raises(ValueError):
        objective([(steps, steady)], [], 475, floor=10)


def test_normalised_area_by_hand():
    # a floor of -500 and threshold -100 (Acrobot): -300 is half-way; solved at 2,000 of 4,000 steps
    assert normalised_area([2000, 4000], [-100, -100], -100, -500) == pytest.approx((0.5 * 2000 * 1 + 2000) / 4000)
    assert normalised_area([1000], [-300], -100, -500, budget=1000) == pytest.approx(0.25)
    assert normalised_area([1000], [-900], -100, -500) == 0.0  # worse than random clips at 0


def test_running_score_is_the_mean_over_seeds_so_far():
    # the seeds train together: seed 0 solved from its first evaluation on (area so far 0.75: the curve starts
    # at the floor at step 0), seed 1 at the floor throughout (0)
    solved, flat = [(1000, 475), (2000, 500)], [(1000, 10), (2000, 10)]
    assert running_score([solved, flat], 475, 10) == pytest.approx((0.75 + 0.0) / 2)
    assert running_score([[], []], 475, 10) == 0.0


def test_cost_term_and_gradient_steps_per_env_step_by_hand():
    from rlsuite.agents.pg import A2CConfig, PPOConfig
    from rlsuite.agents.sac_td3 import SACConfig
    from rlsuite.tune.space import cost_term

    # twice the reference costs `weight`, half earns it, the reference itself costs nothing, no cost no term
    assert cost_term(0.5, 0.25, 0.05) == pytest.approx(0.05)
    assert cost_term(0.0625, 0.25, 0.05) == pytest.approx(-0.1)
    assert cost_term(0.25, 0.25, 0.05) == 0.0 and cost_term(None, 0.25, 0.05) == 0.0 and cost_term(1.0, 0.25, 0) == 0.0
    # PPO: 20 epochs of 128 // 48 = 2 minibatches per 128-step rollout (ppo_update's split)
    assert PPOConfig(n_steps=16, num_envs=8, batch_size=48, n_epochs=20).gradient_steps_per_env_step() == pytest.approx(40 / 128)
    assert A2CConfig(n_steps=5, num_envs=8).gradient_steps_per_env_step() == pytest.approx(1 / 40)
    # DQN and SAC: gradient_steps each time the env-step count crosses a multiple of train_freq, which a vector
    # step of num_envs env steps does at most once
    assert DQNConfig(train_freq=256, gradient_steps=128).gradient_steps_per_env_step() == pytest.approx(0.5)
    assert DQNConfig(train_freq=256, gradient_steps=128, num_envs=4).gradient_steps_per_env_step() == pytest.approx(0.5)
    assert SACConfig(train_freq=2, gradient_steps=1, num_envs=4).gradient_steps_per_env_step() == pytest.approx(1 / 2)


def test_anneal_turns_a_value_into_a_schedule_and_back():
    space = parse_space({"lr": {"loguniform": [1e-4, 1e-2], "anneal": True},
                         "hidden": {"categorical": [[64, 64], [128, 128]]}}, DQNConfig, "t")
    assert space["lr"].value(3e-3) == {"linear": [3e-3, 0.0]}
    assert space["lr"].suggestion({"linear": [2.3e-3, 0.0]}) == 2.3e-3
    assert space["lr"].suggestion({"linear": [2.3e-3, 1e-4]}) is None  # not a schedule to 0
    assert space["lr"].suggestion(3e-3) is None                          # a constant is not annealed
    assert space["lr"].suggestion({"linear": [5e-2, 0.0]}) is None       # outside the bounds
    assert space["hidden"].suggestion((64, 64)) == "64,64" and space["hidden"].suggestion((32, 32)) is None
    for spec, fragment in [({"uniform": [0.9, 0.99], "anneal": True}, "schedule field"),
                           ({"categorical": [1e-3], "anneal": True}, "uniform or loguniform"),
                           ({"loguniform": [1e-4, 1e-2], "anneal": "yes"}, "true or false")]:
        field = "gamma" if "schedule field" == fragment else "lr"
        with pytest.raises(UserError, match=fragment):
            parse_space({field: spec}, DQNConfig, "t")


def test_a_search_space_outside_a_fields_range_is_refused_before_any_trial(tmp_path):
    from click.testing import CliRunner
    from conftest import assert_one_line_error

    from rlsuite.cli import main

    result = CliRunner().invoke(main, ["tune", "ppo", "CartPole-v1", "--trials", "1", "--out", str(tmp_path),
                                       "--search", "gamma={uniform: [0.5, 1.5]}"])
    assert_one_line_error(result, "search space gamma: 1.5 lies outside the field's range")
    assert not (tmp_path / "tune").exists()
