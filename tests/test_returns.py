"""n-step targets against a hand-computed example with a termination and a truncation."""

import numpy as np
import pytest

from rlsuite.learn.returns import discounted_sum, n_step_targets
from rlsuite.learn.replay import NStepAccumulator

# t:            0    1    2(term) 3    4(trunc) 5(array end)
REWARDS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
TERM = [0, 0, 1, 0, 0, 0]
TRUNC = [0, 0, 0, 0, 1, 0]
GAMMA, N = 0.5, 3

# By hand, gamma = 0.5, n = 3:
#   t=0: 1 + .5*2 + .25*3 = 2.75, terminated inside the window -> discount 0
#   t=1: 2 + .5*3 = 3.5, discount 0;  t=2: 3, discount 0
#   t=3: 4 + .5*5 = 6.5, truncated after 2 rewards -> bootstrap with .5^2 from obs after step 4
#   t=4: 5, truncated after 1 reward -> .5 from obs after step 4
#   t=5: 6, array ends mid-episode -> .5 from obs after step 5
EXPECTED_RETURNS = [2.75, 3.5, 3.0, 6.5, 5.0, 6.0]
EXPECTED_DISCOUNTS = [0.0, 0.0, 0.0, 0.25, 0.5, 0.5]
EXPECTED_BOOTSTRAP = [2, 2, 2, 4, 4, 5]


def test_discounted_sum():
    assert discounted_sum([1, 2, 4], 0.5) == 1 + 1 + 1


def test_n_step_targets_hand_computed():
    returns, discounts, bootstrap = n_step_targets(REWARDS, TERM, TRUNC, GAMMA, N)
    np.testing.assert_allclose(returns, EXPECTED_RETURNS)
    np.testing.assert_allclose(discounts, EXPECTED_DISCOUNTS)
    np.testing.assert_array_equal(bootstrap, EXPECTED_BOOTSTRAP)


def test_n_step_window_of_full_length():
    returns, discounts, bootstrap = n_step_targets([1, 1, 1, 1], [0] * 4, [0] * 4, 0.9, 2)
    assert returns[0] == pytest.approx(1.9) and discounts[0] == pytest.approx(0.81) and bootstrap[0] == 1


def test_accumulator_matches_pure_function():
    """The online accumulator emits the same transitions as n_step_targets (complete windows)."""
    acc = NStepAccumulator(num_envs=1, n=N, gamma=GAMMA)
    emitted = []
    for t in range(len(REWARDS)):
        obs = np.array([[float(t)]])
        next_obs = np.array([[float(t) + 0.5]])  # "obs after step t"
        out = acc.push(obs, np.array([0]), np.array([REWARDS[t]]), next_obs, np.array([bool(TERM[t])]), np.array([bool(TRUNC[t])]))
        if out is not None:
            for o, _, r, no, d in zip(*out):
                emitted.append((int(o[0]), r, d, int(no[0] - 0.5)))
    emitted.sort()
    # steps 0-4 have complete windows by the end of the array; step 5 is still pending
    assert [e[0] for e in emitted] == [0, 1, 2, 3, 4]
    for t, r, d, b in emitted:
        assert r == pytest.approx(EXPECTED_RETURNS[t])
        assert d == pytest.approx(EXPECTED_DISCOUNTS[t])
        assert b == EXPECTED_BOOTSTRAP[t]


def test_one_step_accumulator_discounts():
    acc = NStepAccumulator(num_envs=2, n=1, gamma=0.9)
    *_, d = acc.push(np.zeros((2, 1)), np.zeros(2), np.ones(2), np.zeros((2, 1)), np.array([True, False]), np.array([False, True]))
    np.testing.assert_allclose(d, [0.0, 0.9])  # termination: no bootstrap; truncation: bootstrap


# --- on-policy targets: T = 4, one env, termination at t=1, time-limit truncation at t=3 ----------
from rlsuite.learn.returns import gae, monte_carlo_returns  # noqa: E402


def test_gae_hand_computed():
    rewards = np.ones((4, 1))
    values = np.full((4, 1), 0.5)
    term = np.array([[0], [1], [0], [0]], bool)
    trunc = np.array([[0], [0], [0], [1]], bool)
    tv = np.array([[0.0], [0.0], [0.0], [2.0]])  # V(true final obs) at the time limit
    adv, ret = gae(rewards, values, term, trunc, last_values=np.array([10.0]), gamma=0.9, lam=0.8, truncated_values=tv)
    # t=3 truncated: 1 + .9*2 - .5 = 2.3 (the recursion stops; last_values unused)
    # t=2: delta 1 + .9*.5 - .5 = .95; adv .95 + .9*.8*2.3 = 2.606
    # t=1 terminated: 1 + 0 - .5 = .5
    # t=0: .95 + .72*.5 = 1.31
    np.testing.assert_allclose(adv[:, 0], [1.31, 0.5, 2.606, 2.3])
    np.testing.assert_allclose(ret[:, 0], [1.81, 1.0, 3.106, 2.8])


def test_gae_bootstraps_from_last_values_mid_episode():
    adv, ret = gae(np.ones((1, 2)), np.zeros((1, 2)), np.zeros((1, 2), bool), np.zeros((1, 2), bool),
                   last_values=np.array([10.0, 0.0]), gamma=0.5, lam=0.9)
    np.testing.assert_allclose(adv[0], [6.0, 1.0])


def test_monte_carlo_returns_hand_computed():
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    term = np.array([[0], [1], [0], [0]], bool)
    trunc = np.array([[0], [0], [0], [1]], bool)
    tv = np.array([[0.0], [0.0], [0.0], [8.0]])
    g = monte_carlo_returns(rewards, term, trunc, np.array([100.0]), 0.5, tv)
    # t=3: 4 + .5*8 = 8;  t=2: 3 + .5*8 = 7;  t=1 (terminal): 2;  t=0: 1 + .5*2 = 2
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 7.0, 8.0])
    g = monte_carlo_returns(rewards, term, trunc, np.array([100.0]), 0.5)  # no critic: the time limit adds 0
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 5.0, 4.0])
