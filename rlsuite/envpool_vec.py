"""EnvPool (Weng et al. 2022) as a training vector env for Atari cards that say `vectorization: envpool`.

EnvPool steps many emulators in C++ threads and does the Atari preprocessing there. This adapter
translates the env card into EnvPool's options (the same no-op starts, frame skip, 84x84 grayscale,
frame stack, and the card's train-only episodic life and reward clipping) and turns EnvPool's
next-step autoreset into the same-step autoreset every rlsuite agent expects: when a game ends, the
true final observation goes to info["final_obs"] and the env is reset at once. Evaluation never
uses EnvPool: it plays the card's gymnasium env, so scores stay raw whole games either way.
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np

from rlsuite.cards import EnvCard
from rlsuite.errors import UserError


def _wrapper(card: EnvCard, name: str) -> dict | None:
    for spec in card.wrappers:
        spec = {"name": spec} if isinstance(spec, str) else spec
        if spec.get("name", "").split(":")[-1] == name:
            return spec
    return None


def envpool_options(card: EnvCard, training: bool) -> tuple[str, dict]:
    """(EnvPool task id, its options) equivalent to the card's gymnasium wrappers."""
    if not card.id.startswith("ALE/"):
        raise UserError(f"{card.id}: vectorization envpool is for Atari (ALE/...) cards; use sync or async")
    task = card.id.split("/", 1)[1]
    pre = (_wrapper(card, "AtariPreprocessing") or {}).get("kwargs") or {}
    if _wrapper(card, "AtariPreprocessing") is None:
        raise UserError(f"{card.id}: vectorization envpool needs the card's AtariPreprocessing wrapper to translate")
    size = pre.get("screen_size", 84)
    h, w = (size, size) if isinstance(size, int) else size
    life, clip = _wrapper(card, "EpisodicLife"), _wrapper(card, "ClipReward")
    make = card.make_kwargs
    options = {
        "stack_num": card.frame_stack, "frame_skip": pre.get("frame_skip", 4), "noop_max": pre.get("noop_max", 30),
        "img_height": h, "img_width": w, "gray_scale": pre.get("grayscale_obs", True),
        "repeat_action_probability": make.get("repeat_action_probability", 0.25),
        "full_action_space": make.get("full_action_space", False),
        "use_fire_reset": _wrapper(card, "FireReset") is not None,
        # train-only wrappers apply in training only, as in the gymnasium path
        "episodic_life": life is not None and (training or not life.get("train_only")),
        "reward_clip": clip is not None and (training or not clip.get("train_only")),
    }
    return task, options


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """An EnvPool pool behind gymnasium's VectorEnv interface, with same-step autoreset."""

    def __init__(self, card: EnvCard, num_envs: int, training: bool = True):
        if importlib.util.find_spec("envpool") is None:
            raise UserError(f"{card.id}'s env card asks for EnvPool (vectorization: envpool), which is not installed; "
                            "pip install 'rlsuite[envpool]', or set vectorization: async in the card")
        self.task, self.options = envpool_options(card, training)
        self.num_envs = num_envs
        self.pool = self._make(num_envs=1, seed=0)
        self.single_observation_space = self.pool.observation_space
        self.single_action_space = self.pool.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.pool.close()
        self.pool = None

    def _make(self, num_envs: int, seed: int):
        import envpool

        return envpool.make(self.task, env_type="gymnasium", num_envs=num_envs, seed=int(seed), **self.options)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.pool is None or seed is not None:
            if self.pool is not None:
                self.pool.close()
            self.pool = self._make(self.num_envs, 0 if seed is None else seed)  # env i is seeded seed + i
        obs, _ = self.pool.reset()
        return obs, {}

    def step(self, actions):
        actions = np.asarray(actions)
        obs, rewards, terminated, truncated, _ = self.pool.step(actions)
        ended = np.asarray(terminated) | np.asarray(truncated)
        info: dict = {}
        if ended.any():
            ids = np.flatnonzero(ended)
            final = np.empty(self.num_envs, dtype=object)
            for i in ids:
                final[i] = obs[i].copy()
            # EnvPool resets an ended env on its next step (the action is ignored): do that now, for it alone
            first, *_ = self.pool.step(np.zeros(len(ids), dtype=actions.dtype), np.asarray(ids, dtype=np.int32))
            obs = obs.copy()
            obs[ids] = first
            info = {"final_obs": final, "_final_obs": ended.copy()}
        return obs, np.asarray(rewards, np.float32), np.asarray(terminated), np.asarray(truncated), info

    def close_extras(self, **kwargs):
        if self.pool is not None:
            self.pool.close()
            self.pool = None
