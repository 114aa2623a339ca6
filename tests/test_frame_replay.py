"""The frame-sharing replay memory against the naive one, on real gymnasium frame stacks."""

import gymnasium as gym
import numpy as np
import pytest

from rlsuite.envs.make import true_next_obs
from rlsuite.learn.frame_replay import FrameReplayBuffer, frame_replay_bytes, naive_replay_bytes
from rlsuite.learn.replay import NStepAccumulator, ReplayBuffer


class RandomFrames(gym.Env):
    """Random 5x6 uint8 frames; episodes end by termination or truncation after 1-12 steps."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(0, 255, (5, 6), np.uint8)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(1, 13))
        return self.np_random.integers(0, 256, (5, 6), dtype=np.uint8), {}

    def step(self, action):
        self.left -= 1
        end = self.left <= 0
        terminated = bool(end and self.np_random.random() < 0.5)
        return (self.np_random.integers(0, 256, (5, 6), dtype=np.uint8), float(self.np_random.normal()),
                terminated, end and not terminated, {})


def fill(n_step: int, prioritized: bool, steps: int = 300, capacity: int = 1000, num_envs: int = 3, seed: int = 0):
    envs = gym.vector.SyncVectorEnv([lambda: gym.wrappers.FrameStackObservation(RandomFrames(), 4)] * num_envs,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    naive = ReplayBuffer(capacity, (4, 5, 6), np.uint8)
    framed = FrameReplayBuffer(capacity, (4, 5, 6), num_envs, n_step, prioritized)
    accumulators = [NStepAccumulator(num_envs, n_step, 0.9) for _ in range(2)]
    obs, _ = envs.reset(seed=seed)
    keys = [b.begin(obs) for b in (naive, framed)]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(3, size=num_envs)
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        final = true_next_obs(next_obs, info)
        for i, (buffer, acc) in enumerate(zip((naive, framed), accumulators)):
            stored_next, current = buffer.advance(keys[i], final, next_obs, terminated | truncated)
            ready = acc.push(keys[i], actions, rewards, stored_next, terminated, truncated)
            if ready is not None:
                buffer.add(*ready)
            keys[i] = current
        obs = next_obs
    return naive, framed


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("prioritized", [False, True])
def test_rebuilt_stacks_are_the_stacks_the_env_gave(n_step, prioritized):
    naive, framed = fill(n_step, prioritized)
    assert len(naive) == len(framed) > 800  # episodes of 1-12 steps: many boundaries, n-step windows cut there
    idx = np.arange(len(naive))
    a, b = naive.gather(idx), framed.gather(idx)
    for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
        assert a[name].dtype == b[name].dtype
        assert (a[name] == b[name]).all(), name
    assert (a["discounts"] == 0).any() and (a["discounts"] > 0).any()  # terminations and bootstraps both present


def test_wrapped_buffer_keeps_only_reachable_transitions():
    # capacity 200 over 900 transitions: the frame store wraps several times; every sample is still exact
    naive, framed = fill(3, False, steps=300, capacity=200)
    rng = np.random.default_rng(1)
    idx = framed.sample_indices((5, 32), rng)
    a, b = naive.gather(idx), framed.gather(idx)
    assert (a["obs"] == b["obs"]).all() and (a["next_obs"] == b["next_obs"]).all()


def test_checkpoint_round_trip():
    naive, framed = fill(1, True, steps=100)
    state = framed.state_dict()
    again = FrameReplayBuffer(1000, (4, 5, 6), 3, 1, True)
    again.load_state_dict(state)
    idx = np.arange(len(framed))
    for name, value in framed.gather(idx).items():
        assert (again.gather(idx)[name] == value).all()


def test_memory_is_a_fraction_of_the_naive_buffer():
    atari = (4, 84, 84)
    framed, naive = frame_replay_bytes(1_000_000, atari, 8, 3, False), naive_replay_bytes(1_000_000, atari)
    assert framed < 8e9  # a 1M-transition Atari buffer fits in at most 8 GB
    assert 0.9 / (2 * 4) < framed / naive < 1.1 / (2 * 4)  # ~1/(2 x stack)
    small = FrameReplayBuffer(10_000, atari, 1)
    assert small.frames.nbytes + small.inner.obs.nbytes * 2 < naive_replay_bytes(10_000, atari) / 7
