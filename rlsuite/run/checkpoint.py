"""The checkpoint codec: checkpoints hold only tensors and plain containers, so they load with
`torch.load(..., weights_only=True)` and can never run code; numpy arrays, RNG states and env state
are encoded into that form here. Writes are atomic and refuse non-finite weights."""

from __future__ import annotations

import collections
import enum
import errno
import io
import os
import random
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.errors import UserError
from rlsuite.run.rundir import disk_error

CHECKPOINT_FORMAT = "rlsuite-checkpoint-v1"


# Plain-data encoding of numpy/RNG/env state, so that checkpoints load with weights_only=True.
class _NotPlain(Exception):
    pass


def encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # before the builtins: np.float64 is a float subclass
        return {"__npscalar__": value.item(), "dtype": value.dtype.str}
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _NotPlain(value)
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy()), "dtype": value.dtype.str}
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, collections.deque):
        return {"__deque__": [encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v) for k, v in value.items()}}
    raise _NotPlain(value)


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().astype(np.dtype(value["dtype"]), copy=True)
    if "__npscalar__" in value:
        return np.dtype(value["dtype"]).type(value["__npscalar__"])
    if "__generator__" in value:
        state = value["__generator__"]
        gen = np.random.Generator(getattr(np.random, state["bit_generator"])())
        gen.bit_generator.state = state
        return gen
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__deque__" in value:
        return collections.deque((decode(v) for v in value["__deque__"]), maxlen=value["maxlen"])
    if "__dict__" in value:
        return {k: decode(v) for k, v in value["__dict__"].items()}
    return {k: decode(v) for k, v in value.items()}


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # SAC's sampling, TD3's noise on a GPU
        state["cuda"] = torch.cuda.get_rng_state_all()
    return encode(state)


def set_rng_state(state: dict) -> None:
    state = decode(state)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Env state: the plain attributes of every wrapper and of the base env (positions, counters,
# np_random). Static configuration (spaces, specs, metadata, enums) is skipped; anything else that
# is not plain data (a Box2D world, an emulator) makes the env state unsaveable, and resume then
# starts fresh episodes instead.
_STATIC = (gym.Space, gym.envs.registration.EnvSpec, enum.Enum, type(lambda: 0), io.IOBase)
_STATIC_NAMES = {"metadata", "_metadata", "spec", "_cached_spec", "render_mode", "env_fns", "_env_fns",
                 "env", "envs", "_env", "_action_space", "_observation_space", "single_observation_space",
                 "single_action_space", "observation_space", "action_space", "_np_random_seed"}


def _mujoco_types() -> tuple:
    """(MjModel, MjData, MujocoRenderer) when MuJoCo is installed: a model and a renderer are configuration,
    the data is the simulator's state (saved through mj_getState, restored through mj_setState)."""
    try:
        import mujoco  # optional extra (mujoco)
        from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer  # needs mujoco
    except ImportError:
        return ()
    return mujoco.MjModel, mujoco.MjData, MujocoRenderer


_MJ_SPEC = "mjSTATE_INTEGRATION"  # everything mj_step reads: time, qpos, qvel, act, warm start, controls, ...


def _object_state(obj) -> dict:
    out = {}
    mj = _mujoco_types()
    for name, value in vars(obj).items():
        if name in _STATIC_NAMES or isinstance(value, _STATIC) or callable(value):
            continue
        if mj and isinstance(value, (mj[0], mj[2])):  # the model and the renderer: configuration, not state
            continue
        if mj and isinstance(value, mj[1]) and isinstance(getattr(obj, "model", None), mj[0]):
            import mujoco  # optional extra (mujoco)

            spec = getattr(mujoco.mjtState, _MJ_SPEC)
            state = np.empty(mujoco.mj_stateSize(obj.model, spec))
            mujoco.mj_getState(obj.model, value, state, spec)
            out[name] = {"__mjstate__": torch.from_numpy(state)}
            continue
        out[name] = _deep_state(value) if _in_place(value) else encode(value)
    return out


# Simulators written as plain Python objects (MinAtar's games: ints, lists, numpy arrays and a RandomState)
# are saved attribute by attribute and restored into the live objects.
_IN_PLACE_MODULES = ("minatar",)


def _in_place(value) -> bool:
    return type(value).__module__.split(".")[0] in _IN_PLACE_MODULES


def _deep_state(value):
    if isinstance(value, np.random.RandomState):
        return {"__randomstate__": encode(value.get_state())}
    if _in_place(value):
        return {"__inplace__": {k: _deep_state(v) for k, v in vars(value).items() if not callable(v)}}
    return encode(value)


def _restore_into(obj, attrs: dict) -> None:
    for name, value in attrs.items():
        current = getattr(obj, name, None)
        if isinstance(value, dict) and "__randomstate__" in value:
            current.set_state(decode(value["__randomstate__"]))
        elif isinstance(value, dict) and "__inplace__" in value:
            _restore_into(current, value["__inplace__"])
        else:
            setattr(obj, name, decode(value))


def _set_attr(obj, name: str, value) -> None:
    if isinstance(value, dict) and "__inplace__" in value:
        _restore_into(getattr(obj, name), value["__inplace__"])
        return
    if isinstance(value, dict) and "__mjstate__" in value:  # MuJoCo: restore the simulator in place
        import mujoco  # optional extra (mujoco)

        data = getattr(obj, name)
        mujoco.mj_setState(obj.model, data, value["__mjstate__"].numpy(), getattr(mujoco.mjtState, _MJ_SPEC))
        mujoco.mj_forward(obj.model, data)
        return
    setattr(obj, name, decode(value))


def _chain(env) -> list:
    """[outermost wrapper, ..., base env] for a gym.Env or a VectorEnv."""
    objs = [env]
    while isinstance(objs[-1], (gym.Wrapper, gym.vector.VectorWrapper)):
        objs.append(objs[-1].env)
    return objs


def env_state(envs) -> dict | None:
    """A snapshot of a vector env and all its sub-envs, or None if some state is not plain data."""
    if hasattr(envs, "state_dict"):  # an env that saves itself (the torch backend's)
        return {"own": envs.state_dict()}
    try:
        outer = _chain(envs)
        vec = outer[-1]
        subs = [_chain(e) for e in getattr(vec, "envs", [])]
        if not subs:
            return None  # async or native vector envs keep their state out of reach
        return {"outer": [_object_state(o) for o in outer], "subs": [[_object_state(o) for o in c] for c in subs]}
    except _NotPlain:
        return None


def env_snapshot(envs, obs) -> dict:
    """What an agent's checkpoint needs to continue its envs exactly: their state and the current obs."""
    return {"env": env_state(envs), "obs": torch.as_tensor(obs)}


def set_env_state(envs, state: dict) -> None:
    if "own" in state:
        envs.load_state_dict(state["own"])
        return
    outer = _chain(envs)
    subs = [_chain(e) for e in outer[-1].envs]
    for obj, attrs in zip(outer, state["outer"]):
        for name, value in attrs.items():
            _set_attr(obj, name, value)
    for chain, chain_state in zip(subs, state["subs"]):
        for obj, attrs in zip(chain, chain_state):
            for name, value in attrs.items():
                _set_attr(obj, name, value)


# ---------------------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> dict:
    """Load an rlsuite checkpoint safely (weights_only: plain tensors and containers, no code)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; train first, or point at a run directory that has checkpoints/last.pt")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, foreign pickle: all refused the same way
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UserError(f"{path} is corrupt or not an rlsuite checkpoint ({reason}); retrain or use another run") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an rlsuite checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return data


def restore_weights(net, state: dict, run=None) -> None:
    """load_state_dict with a one-line error when the checkpoint's network is not the one config.yaml
    describes (a hand-edited config, a checkpoint copied from another run)."""
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        where = f"{run.dir}/checkpoints/last.pt" if run is not None else "the checkpoint"
        raise UserError(f"{where} does not match the network config.yaml describes "
                        f"({str(e).splitlines()[0][:100] if str(e) else type(e).__name__}); was config.yaml edited?") from None


class NonFiniteCheckpoint(UserError):
    """A checkpoint would hold NaN/Inf weights: it is refused, the last good one stays."""


def nonfinite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Paths of floating-point tensors holding NaN/Inf anywhere in a nested state."""
    if isinstance(state, torch.Tensor):
        return [prefix or "tensor"] if state.is_floating_point() and not torch.isfinite(state).all() else []
    if isinstance(state, dict):
        return [p for k, v in state.items() for p in nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(state, (list, tuple)):
        return [p for i, v in enumerate(state) for p in nonfinite_tensors(v, f"{prefix}[{i}]")]
    return []


def save_checkpoint(path: Path, data: dict, check: dict | None = None) -> Path:
    """Write `data` atomically (a temporary file renamed over the old one): a kill or a full disk at any
    moment leaves the previous checkpoint whole. `check` (the model weights) must be finite."""
    path = Path(path)
    bad = nonfinite_tensors(check) if check is not None else []
    if bad:
        raise NonFiniteCheckpoint(f"non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        if isinstance(e, RuntimeError):
            full = shutil.disk_usage(path.parent).free < 16 * 2**20
            e = OSError(errno.ENOSPC, "No space left on device") if full else OSError(errno.EIO, f"write failed: {e}")
        previous = f"the last good checkpoint {path} is intact" if path.exists() else "no checkpoint was written yet"
        raise disk_error(e, f"checkpoint {path}", f"{previous}; free space or fix permissions, then resume") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
