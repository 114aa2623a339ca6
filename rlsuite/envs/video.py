"""Videos of a run's greedy agent: gymnasium's RecordVideo over the evaluation env (no train-only
wrappers), one MP4 per episode. Needs the `video` extra (moviepy) and an env with rgb_array rendering."""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlsuite.core.errors import UserError
from rlsuite.core.seeding import episode_seeds
from rlsuite.envs.make import make_env


class ViewableFrames(gym.Wrapper):
    """Frames an MP4 can show: uint8 RGB at least ~160 pixels high. MinAtar renders 10x10 floats in [0, 1],
    which a video writer would turn into a black 10x10 film."""

    def render(self):
        frame = np.asarray(self.env.render())
        if frame.dtype != np.uint8:
            scale = 255.0 if frame.size and float(frame.max()) <= 1.0 else 1.0
            frame = np.clip(frame * scale, 0, 255).astype(np.uint8)
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        k = max(1, int(np.ceil(160 / max(1, min(frame.shape[:2])))))
        if k > 1:  # nearest-neighbour upscaling keeps the cells sharp
            frame = np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
        return frame


def record(policy, folder: str | Path, episodes: int, seed: int | list[int], max_steps: int = 108_000) -> dict:
    """Play `episodes` greedy episodes (seeded seed, seed+1, ..., or one seed each) into FOLDER; returns paths and
    returns."""
    who = "" if policy.implementation == "rlsuite" else f"{policy.implementation}-"  # SB3's films apart from ours
    prefix = f"{who}{policy.agent}-{policy.env_card.id.replace('/', '-')}-step{policy.step}"
    return record_episodes(policy.act, policy.env_card, folder, episodes, seed, prefix, max_steps)


def _render_env(card, seed: int):
    """The evaluation env rendering rgb_array frames, tried once; one line when this cannot work here."""
    if importlib.util.find_spec("moviepy") is None:
        raise UserError("videos need moviepy to write MP4s; pip install 'rlsuite[video]'")
    probe = make_env(card, training=False)
    modes = probe.metadata.get("render_modes", [])
    probe.close()
    if "rgb_array" not in modes:
        raise UserError(f"{card.id} cannot render frames (its render modes: {modes or 'none'}); no video possible")
    warnings.filterwarnings("ignore", module="gymnasium")  # fps / overwrite / dtype notices about rendering
    if not os.environ.get("XDG_RUNTIME_DIR"):  # pygame (classic control's renderer) complains without one
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="rlsuite-xdg-")
    env = make_env(card, training=False, render_mode="rgb_array")
    try:  # fail here, in one line, when the machine cannot render (no display, no EGL/OSMesa)
        env.reset(seed=seed)
        env.render()
    except Exception as e:  # noqa: BLE001 - renderers fail in library-specific ways (mujoco.FatalError, GL errors)
        env.close()
        raise UserError(f"{card.id} cannot render on this machine ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:80] if str(e) else ''}); for MuJoCo set MUJOCO_GL=egl or osmesa") from None
    return env


def check_can_record(card) -> None:
    """Raise the one-line UserError `record_episodes` would, before a training run starts filming."""
    _render_env(card, 0).close()


def record_episodes(act, card, folder: str | Path, episodes: int, seed: int | list[int], prefix: str,
                    max_steps: int = 108_000) -> dict:
    """Play `episodes` episodes of `act(obs_batch) -> actions` on the env card's evaluation env (seeded seed,
    seed+1, ..., or one seed per episode) into FOLDER/PREFIX-episode-I.mp4; returns paths and returns."""
    folder = Path(folder)
    seeds = episode_seeds(seed, episodes)
    env = _render_env(card, seeds[0])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        env.close()
        raise UserError(f"cannot create the video folder {folder} ({e.strerror}); make it writable or free space") from None
    before = set(folder.glob("*.mp4"))
    env = gym.wrappers.RecordVideo(ViewableFrames(env), str(folder), episode_trigger=lambda _: True,
                                   name_prefix=prefix, disable_logger=True)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seeds[i])
            total = 0.0
            for _ in range(max_steps):
                obs, reward, terminated, truncated, _ = env.step(act(np.asarray(obs)[None])[0])
                total += float(reward)
                if terminated or truncated:
                    break
            returns.append(total)
    finally:
        env.close()  # writes the last file
    # this call's files: new ones, and those it overwrote (same names as an earlier call's)
    videos = sorted(p for p in folder.glob(f"{prefix}-episode-*.mp4")
                    if p not in before or int(p.stem.rsplit("-", 1)[1]) < episodes)
    return {"videos": [str(v) for v in videos], "returns": returns}
