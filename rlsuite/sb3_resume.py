"""An SB3 model's training state as plain tensors, and putting it back: what lets an interrupted SB3
baseline run continue from its checkpoint instead of starting over (benchmarks span sessions, and an
SB3 SAC run on Hopper takes an hour on this CPU).

SB3's own `model.save()` pickles (cloudpickle) parts of the model, which loading would have to
unpickle; everything here is tensors and numbers, so the checkpoint loads with weights_only=True like
rlsuite's own. What is saved is what SB3's save() and save_replay_buffer() keep, the counters its
schedules and target updates read, and VecNormalize's running statistics.

What it is not: bit-exact. The episodes running at the checkpoint start afresh on resume (envs reseeded
with seed + step) and the action space's sampler is reseeded; rlsuite's own runs resume exactly.
"""

from __future__ import annotations

import numpy as np
import torch

BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_n_calls")


def _attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _rms(rms) -> dict:
    return {"mean": torch.as_tensor(np.asarray(rms.mean, dtype=np.float64)),
            "var": torch.as_tensor(np.asarray(rms.var, dtype=np.float64)), "count": float(rms.count)}


def _set_rms(rms, saved: dict) -> None:
    rms.mean, rms.var, rms.count = saved["mean"].numpy().copy(), saved["var"].numpy().copy(), saved["count"]


def training_state(model) -> dict:
    """Everything beyond the policy's weights that SB3 needs to go on training `model`: optimizer states,
    learned variables (SAC's log entropy coefficient), counters, the filled part of the replay buffer and
    VecNormalize's statistics. Keys follow rlsuite's checkpoint layout ("buffer" is data, not weights)."""
    from stable_baselines3.common.vec_env import VecNormalize

    names, variables = model._get_torch_save_params()
    state = {"training": {"modules": {n: _attr(model, n).state_dict() for n in names if n != "policy"},
                          "variables": {n: _attr(model, n).detach().clone() for n in variables},
                          "counters": {c: int(getattr(model, c)) for c in COUNTERS if hasattr(model, c)}}}
    buf = getattr(model, "replay_buffer", None)
    if buf is not None:
        if isinstance(buf.observations, dict):
            raise NotImplementedError("dict observations: rlsuite's baselines use array observations only")
        n = buf.buffer_size if buf.full else buf.pos
        state["buffer"] = {"pos": int(buf.pos), "full": bool(buf.full),
                           **{k: torch.from_numpy(np.ascontiguousarray(getattr(buf, k)[:n]))
                              for k in BUFFER_FIELDS if getattr(buf, k, None) is not None}}
    env = model.get_env()
    if isinstance(env, VecNormalize):
        state["training"]["vec_normalize"] = {"obs_rms": _rms(env.obs_rms) if env.norm_obs else None,
                                              "ret_rms": _rms(env.ret_rms)}
    return state


def restore_training_state(model, state: dict) -> int:
    """Put a checkpoint's `state` (sb3_state + training_state) back into a freshly built `model` with the
    same hyperparameters; returns the step it continues from."""
    from stable_baselines3.common.vec_env import VecNormalize

    training = state["training"]
    model.policy.load_state_dict(state["policy"])
    for name, saved in training["modules"].items():
        _attr(model, name).load_state_dict(saved)
    with torch.no_grad():  # in place: optimizers hold these very tensors
        for name, saved in training["variables"].items():
            _attr(model, name).copy_(saved)
    for name, value in training["counters"].items():
        setattr(model, name, value)
    saved = state.get("buffer")
    if saved is not None:
        buf = model.replay_buffer
        for k in BUFFER_FIELDS:
            if k in saved:
                getattr(buf, k)[:len(saved[k])] = saved[k].numpy()
        buf.pos, buf.full = saved["pos"], saved["full"]
    norm = training.get("vec_normalize")
    env = model.get_env()
    if norm is not None and isinstance(env, VecNormalize):
        if norm["obs_rms"] is not None:
            _set_rms(env.obs_rms, norm["obs_rms"])
        _set_rms(env.ret_rms, norm["ret_rms"])  # its running returns start at zero: so do the episodes
    return int(model.num_timesteps)
