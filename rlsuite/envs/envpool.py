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

from rlsuite.config.schema import EnvCard
from rlsuite.core.errors import UserError

KNOWN_WRAPPERS = {"AtariPreprocessing", "EpisodicLife", "FireReset", "ClipReward"}
PREPROCESSING = {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "grayscale_obs": True,
                 "terminal_on_life_loss": False, "grayscale_newaxis": False, "scale_obs": False}


def _wrappers(card: EnvCard) -> dict[str, dict]:
    found = {}
    for spec in card.wrappers:
        spec = {"name": spec} if isinstance(spec, str) else spec
        name = spec.get("name", "").split(":")[-1]
        if name not in KNOWN_WRAPPERS:
            raise UserError(f"{card.id}: EnvPool cannot run the card's wrapper {spec.get('name')}; use vectorization async")
        found[name] = spec
    return found


def envpool_options(card: EnvCard, training: bool) -> tuple[str, dict]:
    """(EnvPool task id, its options) doing exactly what the card's gymnasium env does, or a one-line error
    naming what EnvPool cannot do (then `vectorization: async` runs the card as written)."""
    if not card.id.startswith("ALE/"):
        raise UserError(f"{card.id}: vectorization envpool is for Atari (ALE/...) cards; use sync or async")
    wrappers = _wrappers(card)
    if "AtariPreprocessing" not in wrappers:
        raise UserError(f"{card.id}: vectorization envpool needs the card's AtariPreprocessing wrapper to translate")
    pre = {**PREPROCESSING, **(wrappers["AtariPreprocessing"].get("kwargs") or {})}
    if pre["terminal_on_life_loss"] or pre["grayscale_newaxis"] or pre["scale_obs"] or not pre["grayscale_obs"]:
        raise UserError(f"{card.id}: EnvPool cannot reproduce AtariPreprocessing{wrappers['AtariPreprocessing'].get('kwargs')}; "
                        "use vectorization async")
    clip = wrappers.get("ClipReward")
    if clip is not None and (clip.get("kwargs") or {}) not in ({"min_reward": -1, "max_reward": 1}, {}):
        raise UserError(f"{card.id}: EnvPool clips rewards to [-1, 1] only, the card asks {clip.get('kwargs')}")
    make = dict(card.make_kwargs)
    unknown = set(make) - {"frameskip", "repeat_action_probability", "full_action_space", "max_num_frames_per_episode"}
    if unknown or make.get("frameskip", 1) != 1:
        what = sorted(unknown) or ["frameskip != 1"]
        raise UserError(f"{card.id}: EnvPool cannot take the env argument(s) {what}; use vectorization async")
    size = pre["screen_size"]
    h, w = (size, size) if isinstance(size, int) else size
    frames = make.get("max_num_frames_per_episode", 108_000)
    life = wrappers.get("EpisodicLife")
    options = {
        # the frame stack is kept by the adapter (stack_num 1 here), so that a new episode (a new life
        # with episodic life) starts from a stack padded with its first frame, as FrameStackObservation does
        "stack_num": 1, "frame_skip": pre["frame_skip"], "noop_max": pre["noop_max"],
        "img_height": h, "img_width": w, "gray_scale": True,
        "repeat_action_probability": make.get("repeat_action_probability", 0.25),
        "full_action_space": make.get("full_action_space", False),
        "max_episode_steps": int(frames) // pre["frame_skip"],
        "use_fire_reset": "FireReset" in wrappers,
        # train-only wrappers apply in training only, as in the gymnasium path
        "episodic_life": life is not None and (training or not life.get("train_only")),
        "reward_clip": clip is not None and (training or not clip.get("train_only")),
    }
    return task_id(card), options


def task_id(card: EnvCard) -> str:
    return card.id.split("/", 1)[1]


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """An EnvPool pool behind gymnasium's VectorEnv interface, with same-step autoreset."""

    def __init__(self, card: EnvCard, num_envs: int, training: bool = True):
        if importlib.util.find_spec("envpool") is None:
            raise UserError(f"{card.id} runs with EnvPool here (vectorization: envpool), which is not installed; "
                            "pip install 'rlsuite[envpool]' (a run trained with EnvPool resumes with it), or give "
                            "new runs vectorization: async in the env card")
        self.task, self.options = envpool_options(card, training)
        self.num_envs = num_envs
        self.stack = card.frame_stack
        self.pool = self._make(num_envs=1, seed=0)
        frame = self.pool.observation_space  # (1, H, W)
        self.single_observation_space = gym.spaces.Box(0, 255, (self.stack, *frame.shape[1:]), np.uint8)
        self.single_action_space = self.pool.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.pool.close()
        self.pool = None

    def _make(self, num_envs: int, seed: int):
        import envpool  # optional extra (envpool)

        return envpool.make(self.task, env_type="gymnasium", num_envs=num_envs, seed=int(seed), **self.options)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):  # EnvPool takes one seed and seeds its env i with seed + i
            seed = seed[0]
        if self.pool is None or seed is not None:
            if self.pool is not None:
                self.pool.close()
            self.pool = self._make(self.num_envs, 0 if seed is None else seed)  # env i is seeded seed + i
        frames, _ = self.pool.reset()
        self.stacks = np.repeat(frames, self.stack, axis=1)  # (N, 1, H, W) -> (N, stack, H, W), padded as gymnasium
        return self.stacks.copy(), {}

    def step(self, actions):
        actions = np.asarray(actions)
        frames, rewards, terminated, truncated, _ = self.pool.step(actions)
        self.stacks = np.concatenate([self.stacks[:, 1:], frames], axis=1)
        ended = np.asarray(terminated) | np.asarray(truncated)
        info: dict = {}
        if ended.any():
            ids = np.flatnonzero(ended)
            final = np.empty(self.num_envs, dtype=object)
            for i in ids:
                final[i] = self.stacks[i].copy()
            # EnvPool resets an ended env on its next step (the action is ignored): do that now, for it alone
            first, *_ = self.pool.step(np.zeros(len(ids), dtype=actions.dtype), np.asarray(ids, dtype=np.int32))
            self.stacks[ids] = np.repeat(first, self.stack, axis=1)
            info = {"final_obs": final, "_final_obs": ended.copy()}
        return self.stacks.copy(), np.asarray(rewards, np.float32), np.asarray(terminated), np.asarray(truncated), info

    def close_extras(self, **kwargs):
        if self.pool is not None:
            self.pool.close()
            self.pool = None
