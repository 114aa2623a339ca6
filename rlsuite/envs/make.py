"""Make environments from an id and its env card: single envs, vector envs, wrappers, space checks.

Any registered Gymnasium id works, and `package.module:EnvId` imports the module first so that a
third-party package can register its ids. Vector envs use gymnasium's SAME_STEP autoreset: when a
sub-env ends, `step` returns the first observation of the next episode and the true final
observation in `info["final_obs"]`, which is what a bootstrap at a time limit needs.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.config.schema import EnvCard
from rlsuite.core.errors import UserError, close_matches
from rlsuite.envs.envpool import EnvPoolVectorEnv, envpool_options
from rlsuite.envs.torch_classic import make_torch_vector_env


def _register_optional(env_id: str) -> None:
    """Import the packages that register well-known namespaces (ALE/..., MinAtar/...)."""
    namespace = env_id.split("/")[0] if "/" in env_id else ""
    try:
        if namespace == "ALE":
            import ale_py  # optional extra (atari)

            gym.register_envs(ale_py)
        elif namespace == "MinAtar" and env_id not in gym.registry:  # registering twice warns per game
            from minatar import gym as minatar_gym  # optional extra (minatar)

            minatar_gym.register_envs()
    except ImportError:
        extra = "atari" if namespace == "ALE" else "minatar"
        raise UserError(f"{env_id} needs an optional package; pip install 'rlsuite[{extra}]'") from None


MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def check_module_name(module: str, what: str) -> None:
    """An absolute dotted module name (a relative '.mod' or a path would make import_module fail obscurely)."""
    if not MODULE_NAME.fullmatch(module):
        raise UserError(f"{what}: '{module}' is not a module name; write an absolute dotted name, e.g. "
                        "mypackage.envs:MyEnv-v0")


def resolve_env_id(env_id: str, extras: bool = True) -> str:
    """Check that `env_id` is registered (importing `module:` prefixes first), and with `extras` that the packages
    its constructor imports are installed; return the bare id."""
    if not isinstance(env_id, str) or not env_id.strip(":").strip():
        raise UserError(f"{env_id!r} is not an environment id; give e.g. CartPole-v1 or package.module:EnvId")
    if ":" in env_id:
        module, _, bare = env_id.partition(":")
        if not module or not bare:
            raise UserError(f"env '{env_id}' needs both parts: package.module:EnvId")
        check_module_name(module, f"env '{env_id}'")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"cannot import '{module}' for env '{env_id}' ({e}); install the package that provides it") from None
    else:
        bare = env_id
        _register_optional(env_id)
    if bare not in gym.registry and importlib.util.find_spec("ale_py") is not None:
        import ale_py  # registers the v4 ids too (PongNoFrameskip-v4, ...), not only ALE/...

        gym.register_envs(ale_py)
    if bare not in gym.registry:
        hint = close_matches(bare, gym.registry.keys())
        raise UserError(
            f"unknown environment '{bare}'{hint}; use a registered Gymnasium id, or 'package.module:EnvId' "
            "to import a package that registers it"
        )
    if not extras:
        return bare
    try:  # Box2D and friends are imported lazily by gymnasium; fail here, clearly, if missing
        gym.spec(bare).make  # noqa: B018 - attribute access only
        entry = gym.spec(bare).entry_point
        if isinstance(entry, str) and "box2d" in entry:
            importlib.import_module("Box2D")
    except ImportError:
        raise UserError(f"{bare} needs Box2D; pip install 'rlsuite[box2d]'") from None
    return bare


def threshold(card: EnvCard) -> float | None:
    """The solve threshold: the env card's, else gymnasium's reward_threshold."""
    if card.threshold is not None:
        return float(card.threshold)
    spec_value = gym.spec(resolve_env_id(card.id)).reward_threshold
    return None if spec_value is None else float(spec_value)


# Run directories written before the package was layered name rlsuite's wrappers by their old module.
MOVED_MODULES = {"rlsuite.atari": "rlsuite.envs.atari"}


def wrapper_class(name: str) -> type:
    """A gymnasium.wrappers class by name, or any class as 'package.module:Class'."""
    if ":" in name:
        module, _, attr = name.partition(":")
        module = MOVED_MODULES.get(module, module)
        check_module_name(module, f"env card wrapper '{name}'")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise UserError(f"env card wrapper '{name}': cannot import {module} ({e})") from None
        except AttributeError:
            raise UserError(f"env card wrapper '{name}': {module} has no {attr}") from None
    else:
        cls = getattr(gym.wrappers, name, None)
        if cls is None:
            raise UserError(f"env card wrapper '{name}' is not a gymnasium.wrappers class"
                            f"{close_matches(name, dir(gym.wrappers))}; write 'package.module:Class' for your own")
    if not isinstance(cls, type) or not issubclass(cls, gym.Wrapper):
        raise UserError(f"env card wrapper '{name}' is not a gymnasium.Wrapper class")
    return cls


def _apply_wrappers(env: gym.Env, wrappers: list, training: bool) -> gym.Env:
    for spec in wrappers:
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise UserError(f"env card wrapper {spec!r} must be a name or {{name: ..., kwargs: {{...}}, train_only: bool}}")
        unknown = set(spec) - {"name", "kwargs", "train_only"}
        if unknown:
            raise UserError(f"env card wrapper {spec['name']}: unknown key(s) {sorted(unknown)}; use name, kwargs, train_only")
        if spec.get("train_only") and not training:
            continue  # e.g. reward clipping: evaluation reports raw environment returns
        cls = wrapper_class(spec["name"])
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise UserError(f"env card wrapper {spec['name']}: kwargs must be a mapping, got {kwargs!r}")
        try:
            env = cls(env, **kwargs)
        except TypeError as e:  # a wrong keyword or a missing argument
            raise UserError(f"env card wrapper {spec['name']}{kwargs}: {e}") from None
        except (ValueError, AssertionError, gym.error.Error) as e:
            raise UserError(f"env card wrapper {spec['name']}{kwargs} refused this env: {e}") from None
    return env


def _constructor_parameters(env_id: str) -> dict[str, Any]:
    """The keyword arguments an env's class takes, with their defaults (inspect.Parameter.empty for none)."""
    entry = gym.spec(env_id).entry_point
    try:
        cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        return {name: p.default for name, p in inspect.signature(cls).parameters.items()
                if name not in ("self", "args", "kwargs")}
    except (ImportError, AttributeError, ValueError, TypeError, gym.error.DependencyNotInstalled):
        return {}  # an env whose extra is missing: gym.make names the extra later


def _constructor_arguments(env_id: str) -> list[str]:
    """The keyword arguments an env's class takes (for a "did you mean" on a misspelt one)."""
    return list(_constructor_parameters(env_id))


def check_kwarg_types(env_id: str, kwargs: dict) -> None:
    """A value must have the type of the constructor's default: a boolean where the default is a boolean ('maybe'
    is not true), a number where it is a number."""
    for key, default in _constructor_parameters(env_id).items():
        if key not in kwargs or default is None or default is inspect.Parameter.empty:
            continue
        value, number = kwargs[key], isinstance(kwargs[key], (int, float)) and not isinstance(kwargs[key], bool)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise UserError(f"env argument {key}={value!r}: {env_id} takes true or false (its default is {default})")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not number:
            raise UserError(f"env argument {key}={value!r}: {env_id} takes a number (its default is {default})")


_MUJOCO_SEEN: set[str] = set()


def _mujoco_warnings_once(env_id: str) -> None:
    """MuJoCo 4 warns about a deprecated attribute of gymnasium's HalfCheetah model every time the model is
    compiled: once per env, twenty-two lines per run. Each distinct warning is printed once per process
    instead (only where nobody has installed a handler of their own)."""
    entry = gym.spec(env_id).entry_point
    if not (isinstance(entry, str) and entry.startswith("gymnasium.envs.mujoco")):
        return
    try:
        import mujoco  # optional extra (mujoco)
    except ImportError:
        return  # gym.make names the missing extra
    if mujoco.get_mju_user_warning() is not None:
        return

    def once(message: str) -> None:
        if message not in _MUJOCO_SEEN:
            _MUJOCO_SEEN.add(message)
            print(f"MuJoCo warning (shown once): {message}", file=sys.stderr, flush=True)

    mujoco.set_mju_user_warning(once)


def make_env(card: EnvCard, training: bool = True, render_mode: str | None = None) -> gym.Env:
    """One environment with the card's wrappers (train-only wrappers skipped when not training)."""
    env_id = resolve_env_id(card.id)
    _mujoco_warnings_once(env_id)
    kwargs: dict[str, Any] = dict(card.make_kwargs)
    if render_mode:
        kwargs["render_mode"] = render_mode
    check_kwarg_types(env_id, card.make_kwargs)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:  # MuJoCo, Box2D, ... are optional packages
        extra = "mujoco" if "mujoco" in str(e).lower() else "box2d" if "box2d" in str(e).lower() else None
        fix = f"pip install 'rlsuite[{extra}]'" if extra else str(e).splitlines()[0]
        raise UserError(f"{env_id} needs an optional package: {fix}") from None
    except (TypeError, gym.error.Error) as e:  # make_kwargs the env does not take

        bad = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if bad:  # name the argument and the close ones the env does take
            raise UserError(f"{env_id} takes no argument '{bad.group(1)}' (env card make_kwargs / --env-kwargs)"
                            f"{close_matches(bad.group(1), _constructor_arguments(env_id))}") from None
        raise UserError(f"env arguments {card.make_kwargs} (env card make_kwargs / --env-kwargs) do not fit "
                        f"{env_id}: {str(e).splitlines()[0][:160]}") from None
    except (ArithmeticError, ValueError, AssertionError) as e:  # a value the constructor rejects (frame_skip=0
        if not card.make_kwargs:                                   # divides by zero in MuJoCo's envs)
            raise
        raise UserError(f"{env_id} fails with the env arguments {card.make_kwargs} (env card make_kwargs / "
                        f"--env-kwargs): {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}") from None
    if not isinstance(card.wrappers, list):
        raise UserError(f"the env card's wrappers must be a list, got {card.wrappers!r}")
    env = _apply_wrappers(env, card.wrappers, training)
    if card.frame_stack > 1:  # last, so that a stack holds preprocessed frames (Atari: 4 x 84 x 84)
        env = gym.wrappers.FrameStackObservation(env, card.frame_stack)
    return env


def resolve_auto(card: EnvCard) -> EnvCard:
    """vectorization auto: EnvPool when it is installed and can run this card exactly, else async."""
    choice = "async"
    if importlib.util.find_spec("envpool") is not None:
        try:
            envpool_options(card, True)
            choice = "envpool"
        except UserError:
            pass
    return dataclasses.replace(card, vectorization=choice)


def make_vector_env(card: EnvCard, num_envs: int, training: bool = True) -> gym.vector.VectorEnv:
    """A vector env with SAME_STEP autoreset and episode statistics (raw returns)."""
    if card.backend == "torch":  # before resolve_env_id, which would ask for the gymnasium env's own extras
        if card.wrappers or card.frame_stack > 1:
            raise UserError(f"{card.id}: backend torch steps the bare env and cannot apply the card's wrappers or "
                            "frame_stack; use backend: gymnasium (--env-backend gymnasium)")
        if card.id in gym.registry:  # the same arguments as gymnasium's env, of the same types
            check_kwarg_types(card.id, card.make_kwargs)
        return make_torch_vector_env(card.id, num_envs, card.make_kwargs)  # it keeps its own episode statistics
    env_id = resolve_env_id(card.id)
    mode = gym.vector.AutoresetMode.SAME_STEP
    # gymnasium's native vector envs take neither wrappers nor a frame stack: those fall back to the sync vector env
    if (card.vectorization == "native" and not card.wrappers and card.frame_stack == 1
            and gym.spec(env_id).vector_entry_point):
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **card.make_kwargs)
        if envs.metadata.get("autoreset_mode") != mode:
            envs.close()  # the native env only knows NEXT_STEP; fall back to the sync vector env
            envs = None
    else:
        envs = None
    if card.vectorization == "auto":
        card = resolve_auto(card)
    if card.vectorization == "envpool":
        envs = EnvPoolVectorEnv(card, num_envs, training)
    if envs is None:
        fns = [lambda: make_env(card, training) for _ in range(num_envs)]
        # one env in a worker process would only add a round trip per step (DQN's single Atari env)
        cls = gym.vector.AsyncVectorEnv if card.vectorization == "async" and num_envs > 1 else gym.vector.SyncVectorEnv
        envs = cls(fns, autoreset_mode=mode)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def require_discrete(space: gym.Space, agent: str) -> int:
    if not isinstance(space, gym.spaces.Discrete):
        raise UserError(
            f"{agent.upper()} needs a discrete action space, but this env has {type(space).__name__} "
            f"{space}; use an env with Discrete actions (e.g. CartPole-v1), or PPO, SAC or TD3 for continuous control"
        )
    return int(space.n)


def require_box_obs(space: gym.Space, agent: str) -> tuple[int, ...]:
    if not isinstance(space, gym.spaces.Box):
        raise UserError(
            f"{agent.upper()} needs Box (array) observations, but this env has {type(space).__name__}; "
            "flatten them with a wrapper in the env card (e.g. FlattenObservation)"
        )
    return tuple(space.shape)


def available_memory() -> int | None:
    """Bytes of RAM this process can still get (MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(needed: int, what: str, fix: str) -> None:
    """Fail before training when an allocation cannot fit in the RAM available now (not hours later)."""
    available = available_memory()
    if available is not None and needed > 0.9 * available:
        raise UserError(f"{what} needs {needed / 2**30:.1f} GiB but {available / 2**30:.1f} GiB of RAM is available; {fix}")


def net_bytes(obs_shape, hidden, outputs: int, copies: int) -> int:
    """Rough bytes of an MLP of these sizes held `copies` times (weights, gradients, optimiser moments...)."""
    sizes = [int(np.prod(obs_shape))] + [int(h) for h in hidden] + [int(outputs)]
    return 4 * copies * sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def episode_stats(info: dict) -> list[tuple[int, float, int]]:
    """(env index, return, length) for every episode that ended in this vector step."""
    if "episode" not in info:
        return []
    ended = np.flatnonzero(info["_episode"])
    return [(int(i), float(info["episode"]["r"][i]), int(info["episode"]["l"][i])) for i in ended]


def true_next_obs(next_obs: np.ndarray, info: dict) -> np.ndarray:
    """next_obs with the rows of ended episodes replaced by their true final observation."""
    if "_final_obs" not in info:
        return next_obs
    out = next_obs.copy()
    for i in np.flatnonzero(info["_final_obs"]):
        out[i] = info["final_obs"][i]
    return out
