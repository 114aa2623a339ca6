"""Sum-tree search, sampling frequencies and priority updates; replay buffer bookkeeping."""

import numpy as np
import pytest

from rlsuite.learn.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree


def test_sum_tree_prefix_search():
    tree = SumTree(5)  # 8 leaves internally
    tree.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    # prefix sums 1, 3, 6, 10
    np.testing.assert_array_equal(tree.find([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99]), [0, 0, 1, 1, 2, 2, 3, 3])


def test_sum_tree_sampling_frequencies():
    rng = np.random.default_rng(0)
    tree = SumTree(4)
    p = np.array([1.0, 2.0, 3.0, 4.0])
    tree.update(np.arange(4), p)
    idx = tree.find(rng.random(200_000) * tree.total)
    freq = np.bincount(idx, minlength=4) / len(idx)
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.005)


def test_sum_tree_priority_update_and_empty_leaves():
    rng = np.random.default_rng(1)
    tree = SumTree(6)
    tree.update(np.arange(6), np.ones(6))
    tree.update(np.array([2, 5, 5]), np.array([0.0, 7.0, 3.0]))  # last write wins for index 5
    assert tree.total == pytest.approx(1 + 1 + 0 + 1 + 1 + 3)
    idx = tree.find(rng.random(50_000) * tree.total)
    assert 2 not in idx and idx.max() <= 5  # zero priority and unfilled leaves are never picked
    assert np.mean(idx == 5) == pytest.approx(3 / 7, abs=0.01)
    # the right edge of the mass never falls into empty leaves 6, 7
    assert tree.find([tree.total * (1 - 1e-12)])[0] == 5


def test_prioritized_weights_and_updates():
    rng = np.random.default_rng(2)
    buf = PrioritizedReplayBuffer(8, (1,), np.float32, alpha=1.0, eps=0.0)
    buf.add(np.zeros((4, 1)), np.zeros(4), np.zeros(4), np.zeros((4, 1)), np.ones(4))
    buf.update_priorities(np.arange(4), np.array([1.0, 1.0, 2.0, 4.0]))
    idx, w = buf.sample_prioritized(4000, beta=1.0, rng=rng)
    freq = np.bincount(idx, minlength=4) / len(idx)
    np.testing.assert_allclose(freq, [0.125, 0.125, 0.25, 0.5], atol=0.01)
    # w_i = (N P(i))^-beta / max: with beta=1, P = [1,1,2,4]/8 -> w ∝ [2, 2, 1, .5] -> / 2
    expected = {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.25}
    for i, wi in zip(idx[:50], w[:50]):
        assert wi == pytest.approx(expected[i])
    assert buf.max_priority == 4.0
    buf.add(np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros((1, 1)), np.ones(1))
    assert buf.tree.priorities([4])[0] == 4.0  # new transitions get the largest priority seen


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(3, (2,), np.float32)
    for t in range(5):
        buf.add(np.full((1, 2), t), np.array([t]), np.array([t]), np.full((1, 2), t + 1), np.array([0.9]))
    assert len(buf) == 3 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    batch = buf.gather(np.array([[0, 1], [2, 0]]))
    assert tuple(batch["obs"].shape) == (2, 2, 2)
    other = ReplayBuffer(3, (2,), np.float32)
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.obs, buf.obs)
    assert (other.pos, other.size) == (buf.pos, buf.size)


def test_episode_carry_uses_every_step_once_with_its_full_return():
    """One episode of 7 steps spans three rollouts of 3 steps (env 0); env 1 has a 2-step episode ended by a
    time limit (bootstrapped from V = 10) and then one that terminates. Rewards are the step numbers."""
    from rlsuite.learn.rollout import EpisodeCarry

    gamma = 0.5
    carry = EpisodeCarry(2, (1,), (), np.int64)
    rewards = np.array([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6], [7, 7], [8, 8], [9, 9]], np.float32)
    term = np.zeros((9, 2), bool)
    trunc = np.zeros((9, 2), bool)
    tv = np.zeros((9, 2), np.float32)
    term[6, 0] = True                     # env 0: steps 0..6 form one episode
    trunc[1, 1], tv[1, 1] = True, 10.0    # env 1: steps 0..1 cut by a time limit
    term[3, 1] = True                     # env 1: steps 2..3 terminate
    obs = np.stack([np.arange(9), 100 + np.arange(9)], 1)[..., None].astype(np.float32)  # (T, N, 1): ids
    actions = np.zeros((9, 2), np.int64)
    seen = []
    got = {}
    for k in range(3):
        part = slice(3 * k, 3 * k + 3)
        out = carry.add(obs[part], actions[part], rewards[part], term[part], trunc[part], tv[part], gamma)
        for o, g in zip(out.get("obs", np.zeros((0, 1)))[:, 0], out.get("returns", [])):
            seen.append(int(o))
            got[int(o)] = float(g)
    # env 0: every one of its 7 steps arrives once, in the third rollout, with the full return
    assert [s for s in seen if s < 100] == [0, 1, 2, 3, 4, 5, 6]
    expected = {}
    g = 0.0
    for t in reversed(range(7)):
        g = rewards[t, 0] + gamma * g
        expected[t] = g
    assert {t: got[t] for t in range(7)} == pytest.approx(expected)
    # env 1: the truncated episode bootstraps from 10, the terminated one does not; steps 4..8 still wait
    assert got[100] == pytest.approx(1 + 0.5 * (2 + 0.5 * 10))
    assert got[101] == pytest.approx(2 + 0.5 * 10)
    assert got[102] == pytest.approx(3 + 0.5 * 4) and got[103] == pytest.approx(4)
    assert sorted(s for s in seen if s >= 100) == [100, 101, 102, 103]
    assert carry.pending() == 2 + 5  # env 0: steps 7, 8; env 1: steps 4..8 (their episodes go on)
    restored = EpisodeCarry(2, (1,), (), np.int64)
    restored.load_state_dict(carry.state_dict())
    assert restored.pending() == 7 and restored.obs[1][:, 0].tolist() == [104, 105, 106, 107, 108]
