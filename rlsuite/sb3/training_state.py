"""An SB3 model's training state as plain tensors, and putting it back: what lets an interrupted SB3
baseline run continue from its checkpoint instead of starting over (benchmarks span sessions, and an
SB3 SAC run on Hopper takes an hour on this CPU).

SB3's own `model.save()` pickles (cloudpickle) parts of the model, which loading would have to
unpickle; everything here is tensors and numbers, so the checkpoint loads with weights_only=True like
rlsuite's own. What is saved is what SB3's save() and save_replay_buffer() keep, the counters its
schedules and target updates read, and VecNormalize's running statistics.

The state is taken at a rollout boundary (SB3's on_rollout_start: the previous chunk is stored and
trained on, nothing of the next one is), where buffer, counters and weights agree. What a resume still
does differently from an uninterrupted run: the episodes running at the checkpoint start afresh (envs
reseeded with seed + step; the cut transitions are marked as truncations) and the action space's
sampler is reseeded. rlsuite's own runs resume exactly.
"""

from __future__ import annotations

import numpy as np
import torch

BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_n_calls")
FLOATS = ("exploration_rate", "_current_progress_remaining")  # DQN's epsilon is set before its first step


def _attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _rms(rms) -> dict:
    return {"mean": torch.as_tensor(np.asarray(rms.mean, dtype=np.float64)),
            "var": torch.as_tensor(np.asarray(rms.var, dtype=np.float64)), "count": float(rms.count)}


def _set_rms(rms, saved: dict) -> None:
    rms.mean, rms.var, rms.count = saved["mean"].numpy().copy(), saved["var"].numpy().copy(), saved["count"]


def can_resume(model) -> bool:
    """Dict observations (never an rlsuite card's) keep policy-only checkpoints: such a run restarts."""
    buf = getattr(model, "replay_buffer", None)
    return buf is None or not isinstance(buf.observations, dict)


def training_state(model, save_buffer: bool = True) -> dict:
    """Everything beyond the policy's weights that SB3 needs to go on training `model`: optimizer states,
    learned variables (SAC's log entropy coefficient), counters, the filled part of the replay buffer (unless
    `save_buffer` is false) and VecNormalize's statistics. Keys follow rlsuite's checkpoint layout ("buffer"
    is data, not weights). Call it at a rollout boundary."""
    names, variables = model._get_torch_save_params()
    state = {"training": {"modules": {n: _attr(model, n).state_dict() for n in names if n != "policy"},
                          "variables": {n: _attr(model, n).detach().clone() for n in variables},
                          "counters": {c: int(getattr(model, c)) for c in COUNTERS if hasattr(model, c)},
                          "floats": {f: float(getattr(model, f)) for f in FLOATS if hasattr(model, f)}}}
    buf = getattr(model, "replay_buffer", None)
    if buf is not None and save_buffer:
        n = buf.buffer_size if buf.full else buf.pos
        state["buffer"] = {"pos": int(buf.pos), "full": bool(buf.full),
                           **{k: torch.from_numpy(np.ascontiguousarray(getattr(buf, k)[:n]))
                              for k in BUFFER_FIELDS if getattr(buf, k, None) is not None}}
    norm = model.get_vec_normalize_env()  # under VecTransposeImage too
    if norm is not None:
        state["training"]["vec_normalize"] = {"obs_rms": _rms(norm.obs_rms) if norm.norm_obs else None,
                                              "ret_rms": _rms(norm.ret_rms)}
    return state


def restore_training_state(model, state: dict) -> int:
    """Put a checkpoint's `state` (sb3_state + training_state) back into a freshly built `model` with the
    same hyperparameters; returns the step it continues from."""
    training = state["training"]
    model.policy.load_state_dict(state["policy"])
    for name, saved in training["modules"].items():
        _attr(model, name).load_state_dict(saved)
    with torch.no_grad():  # in place: optimizers hold these very tensors
        for name, saved in training["variables"].items():
            _attr(model, name).copy_(saved)
    for name, value in {**training["counters"], **training.get("floats", {})}.items():
        setattr(model, name, value)
    saved = state.get("buffer")
    if saved is not None:
        buf = model.replay_buffer
        for k in BUFFER_FIELDS:
            if k in saved:
                getattr(buf, k)[:len(saved[k])] = saved[k].numpy()
        buf.pos, buf.full = saved["pos"], saved["full"]
    norm = training.get("vec_normalize")
    env = model.get_vec_normalize_env()
    if norm is not None and env is not None:
        if norm["obs_rms"] is not None:
            _set_rms(env.obs_rms, norm["obs_rms"])
        _set_rms(env.ret_rms, norm["ret_rms"])  # its running returns start at zero: so do the episodes
    return int(model.num_timesteps)


def cut_episodes(model) -> None:
    """The episodes running at the checkpoint do not continue: mark each env's last stored transition as
    a truncation, so that n-step returns do not chain into the next episode and, with SB3's
    optimize_memory_usage (next obs = the following row), nothing bootstraps from the new episode's start."""
    buf = getattr(model, "replay_buffer", None)
    if buf is None or (buf.pos == 0 and not buf.full):
        return
    last = (buf.pos - 1) % buf.buffer_size
    if getattr(buf, "optimize_memory_usage", False):
        buf.dones[last] = np.maximum(buf.dones[last], 1.0)  # as SB3 itself does when learn() restarts
    else:
        buf.timeouts[last] = np.where(buf.dones[last] > 0, buf.timeouts[last], 1.0)
