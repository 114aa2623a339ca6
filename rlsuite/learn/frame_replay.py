"""Replay memory for stacked image observations: each frame is stored once.

An Atari observation is a stack of the last 4 frames (4x84x84 uint8), and consecutive observations
share 3 of them; a transition holds two. Storing `obs` and `next_obs` whole would keep each frame
8 times (a 1M-transition buffer: ~56 GB). Here every frame goes into one circular frame store and a
transition holds only the ids of its frames, so a stack costs one new frame per step (~7 GB for 1M
transitions). Stacks are rebuilt at sample time, exactly as the env produced them: a new episode's
first stack is stored frame by frame (its padding included), and an ended episode's final stack is
its true final observation, never the next episode's first.

The transitions themselves (frame ids, action, reward, discount) live in the ordinary replay buffer
of `storage` (uniform or prioritized), so n-step returns and priorities work unchanged: the n-step
accumulator passes ids around as it would pass observations.
"""

from __future__ import annotations

import numpy as np
import torch

from rlsuite.core.errors import UserError
from rlsuite.learn.replay import PrioritizedReplayBuffer, ReplayBuffer, naive_replay_bytes  # noqa: F401 (re-exported)

# Frames written per transition exceed one by one frame per episode start (more when a reset stack's
# frames differ). Episodes (lives, with episodic life) last tens of steps at least, so 5% more frame
# slots than transitions keep every stored transition's frames; a transition whose frames were
# overwritten anyway is never sampled.
FRAME_SLACK = 0.05


def frame_capacity(capacity: int, stack: int, num_envs: int, n_step: int) -> int:
    return int(capacity * (1 + FRAME_SLACK)) + num_envs * (stack + n_step + 2)


def frame_replay_bytes(capacity: int, obs_shape, num_envs: int, n_step: int, prioritized: bool) -> int:
    """Bytes a FrameReplayBuffer allocates for (stack, H, W) uint8 observations."""
    stack, frame = int(obs_shape[0]), int(np.prod(obs_shape[1:]))
    per_transition = 2 * stack * 8 + 8 + 4 + 4  # obs and next_obs frame ids (int64), action, reward, discount
    tree = 2 * 8 * 2 ** int(np.ceil(np.log2(max(capacity, 1)))) if prioritized else 0
    return frame_capacity(capacity, stack, num_envs, n_step) * frame + capacity * per_transition + tree


class FrameReplayBuffer:
    """Replay over (stack, H, W) uint8 observations with frames shared between stacks.

    The agent's loop talks to it as to a ReplayBuffer, plus two calls that turn observations into
    what is stored (`begin` after a reset, `advance` after each vector step): frame ids, (N, stack).
    """

    def __init__(self, capacity: int, obs_shape, num_envs: int, n_step: int = 1, prioritized: bool = False,
                 alpha: float = 0.6, eps: float = 1e-6, device: str | torch.device = "cpu"):
        if len(obs_shape) != 3:
            raise UserError(f"frame-sharing replay needs (stack, H, W) observations, got shape {tuple(obs_shape)}")
        self.stack, self.frame_shape = int(obs_shape[0]), tuple(obs_shape[1:])
        self.device = torch.device(device)
        self.n_frames = frame_capacity(capacity, self.stack, num_envs, n_step)
        self.frames = np.zeros((self.n_frames, *self.frame_shape), np.uint8)
        self.written = 0  # frames ever written; frame id k lives in slot k % n_frames
        extra = {"alpha": alpha, "eps": eps} if prioritized else {}
        self.inner = (PrioritizedReplayBuffer if prioritized else ReplayBuffer)(
            capacity, (self.stack,), np.int64, device=device, **extra)
        self.capacity = self.inner.capacity

    def __len__(self) -> int:
        return len(self.inner)

    # --- observations -> frame ids -------------------------------------------------------------
    def _write(self, frames: np.ndarray) -> np.ndarray:
        k = len(frames)
        ids = self.written + np.arange(k, dtype=np.int64)
        self.frames[ids % self.n_frames] = frames
        self.written += k
        return ids

    def _write_stack(self, stack: np.ndarray) -> np.ndarray:
        """All frames of one stack, a frame equal to the one before it sharing its id (reset padding)."""
        same = np.array([False] + [np.array_equal(stack[j], stack[j - 1]) for j in range(1, self.stack)])
        new_ids = self._write(stack[~same])
        return new_ids[np.cumsum(~same) - 1]

    def begin(self, obs: np.ndarray) -> np.ndarray:
        """Frame ids of the first observations after a reset, (N, stack)."""
        return np.stack([self._write_stack(np.asarray(o)) for o in obs])

    def advance(self, ids: np.ndarray, final_obs: np.ndarray, next_obs: np.ndarray, ended: np.ndarray):
        """After a vector step: (ids of each transition's next state, ids of the observations the envs
        now show). Only the newest frame of a stack is new; where an episode ended the next state is
        its true final observation and the env now shows a new episode's first stack."""
        new = self._write(np.asarray(final_obs)[:, -1])
        stored_next = np.concatenate([ids[:, 1:], new[:, None]], axis=1)
        current = stored_next.copy()
        for i in np.flatnonzero(ended):
            current[i] = self._write_stack(np.asarray(next_obs[i]))
        return stored_next, current

    # --- the ReplayBuffer interface --------------------------------------------------------------
    def add(self, obs_ids, actions, rewards, next_ids, discounts) -> np.ndarray:
        return self.inner.add(obs_ids, actions, rewards, next_ids, discounts)

    def _valid(self, idx: np.ndarray) -> np.ndarray:
        return self.inner.obs[idx].min(axis=-1) >= self.written - self.n_frames

    def sample_indices(self, shape, rng: np.random.Generator) -> np.ndarray:
        idx = self.inner.sample_indices(shape, rng)
        for _ in range(100):  # redraw the rare transitions whose oldest frame was overwritten
            bad = ~self._valid(idx)
            if not bad.any():
                return idx
            idx[bad] = self.inner.sample_indices(int(bad.sum()), rng)
        raise UserError("the frame store keeps overwriting sampled frames (episodes of one or two steps?); "
                        "lower buffer_size or check the env's episodes")

    def sample_prioritized(self, batch_size: int, beta: float, rng: np.random.Generator):
        for _ in range(100):
            idx, weights = self.inner.sample_prioritized(batch_size, beta, rng)
            bad = ~self._valid(idx)
            if not bad.any():
                return idx, weights
            self.inner.tree.update(idx[bad], np.zeros(int(bad.sum())))  # gone for good: never drawn again
        raise UserError("the frame store keeps overwriting sampled frames; lower buffer_size")

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        self.inner.update_priorities(idx, td_errors)

    def stacks(self, ids: np.ndarray) -> np.ndarray:
        """Observations rebuilt from frame ids (..., stack) -> (..., stack, H, W) uint8."""
        return self.frames[ids % self.n_frames]

    def gather(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        batch = {name: torch.as_tensor(getattr(self.inner, name)[idx], device=self.device)
                 for name in ("actions", "rewards", "discounts")}
        batch["obs"] = torch.as_tensor(self.stacks(self.inner.obs[idx]), device=self.device)
        batch["next_obs"] = torch.as_tensor(self.stacks(self.inner.next_obs[idx]), device=self.device)
        return batch

    # --- checkpointing: the transitions and the frame store as it is (a view, never a copy: the store
    # can be most of the machine's memory) --------------------------------------------------------------
    def state_dict(self) -> dict:
        filled = min(self.written, self.n_frames)
        return {"inner": self.inner.state_dict(), "written": self.written, "n_frames": self.n_frames,
                "frames": torch.from_numpy(self.frames[:filled])}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("n_frames", -1)) != self.n_frames:
            raise UserError(f"the checkpoint's frame store holds {state.get('n_frames')} frames, this run's {self.n_frames} "
                            "(buffer_size, num_envs or n_step changed); resume with the run's own config.yaml")
        self.inner.load_state_dict(state["inner"])
        self.written = int(state["written"])
        frames = state["frames"].numpy()
        self.frames[:len(frames)] = frames
