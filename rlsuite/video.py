"""Videos of a run's greedy agent: gymnasium's RecordVideo over the evaluation env (no train-only
wrappers), one MP4 per episode. Needs the `video` extra (moviepy) and an env with rgb_array rendering."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlsuite.envs import make_env
from rlsuite.errors import UserError


def record(policy, folder: str | Path, episodes: int, seed: int, max_steps: int = 108_000) -> dict:
    """Play `episodes` greedy episodes (seeded seed, seed+1, ...) into FOLDER; returns paths and returns."""
    if importlib.util.find_spec("moviepy") is None:
        raise UserError("--video needs moviepy to write MP4s; pip install 'rlsuite[video]'")
    card = policy.env_card
    probe = make_env(card, training=False)
    modes = probe.metadata.get("render_modes", [])
    probe.close()
    if "rgb_array" not in modes:
        raise UserError(f"{card.id} cannot render frames (its render modes: {modes or 'none'}); no video possible")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the video folder {folder} ({e.strerror}); give a writable --video DIR") from None
    who = "" if policy.implementation == "rlsuite" else f"{policy.implementation}-"  # SB3's films apart from ours
    prefix = f"{who}{policy.agent}-{card.id.replace('/', '-')}-step{policy.step}"
    warnings.filterwarnings("ignore", module="gymnasium")  # fps / overwrite / dtype notices about rendering
    env = make_env(card, training=False, render_mode="rgb_array")
    try:  # fail here, in one line, when the machine cannot render (no display, no EGL/OSMesa)
        env.reset(seed=seed)
        env.render()
    except Exception as e:  # noqa: BLE001 - renderers fail in library-specific ways (mujoco.FatalError, GL errors)
        env.close()
        raise UserError(f"{card.id} cannot render on this machine ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:80] if str(e) else ''}); for MuJoCo set MUJOCO_GL=egl or osmesa") from None
    env = gym.wrappers.RecordVideo(env, str(folder), episode_trigger=lambda _: True, name_prefix=prefix,
                                   disable_logger=True)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total = 0.0
            for _ in range(max_steps):
                obs, reward, terminated, truncated, _ = env.step(policy.act(np.asarray(obs)[None])[0])
                total += float(reward)
                if terminated or truncated:
                    break
            returns.append(total)
    finally:
        env.close()  # writes the last file
    videos = sorted(folder.glob(f"{prefix}-episode-*.mp4"))
    return {"videos": [str(v) for v in videos], "returns": returns}
