"""The config schema: typed dataclass fields with their help text, value converters, schedules, and
the env card's fields. Every config class an agent defines is built from these pieces.

Values are coerced to the field's declared type; unknown keys are an error naming close matches.
Schedules are data ({linear: [start, end]} or {linear: [start, end, fraction]}), never code.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from rlsuite.config.zoo import SB3
from rlsuite.core.errors import UserError, close_matches


# ---------------------------------------------------------------------------------------------
# Field declarations: every config field carries its help text (shown by `rlsuite list AGENT`).
def param(default: Any, help: str, choices: tuple | None = None, sb3: "str | SB3 | None" = None):
    """A config field with its help text; `sb3`: Stable-Baselines3's argument of the same meaning (a name, or an
    rlsuite.config.zoo.SB3 where the form differs or SB3 has no such setting)."""
    kwargs = {"metadata": {"help": help, "choices": choices, "sb3": SB3(name=sb3) if isinstance(sb3, str) else sb3}}
    if isinstance(default, (list, dict, Schedule)):
        return field(default_factory=lambda: default, **kwargs)
    return field(default=default, **kwargs)


def sb3_specs(cls) -> dict[str, SB3]:
    """Field -> how SB3 expresses it, for the fields of config class CLS that declare it."""
    return {f.name: f.metadata["sb3"] for f in dataclasses.fields(cls) if f.metadata.get("sb3") is not None}


def sb3_names(cls) -> dict[str, str]:
    """SB3's (and the zoo's) name -> rlsuite's field, where the two names differ."""
    return {spec.name: name for name, spec in sb3_specs(cls).items() if spec.name and spec.name != name}


@dataclass(frozen=True)
class Schedule:
    """A value that moves linearly from `start` to `end` over the first `fraction` of training."""

    start: float
    end: float | None = None
    fraction: float = 1.0

    def __call__(self, progress: float) -> float:
        if self.end is None:
            return self.start
        t = min(max(progress, 0.0) / self.fraction, 1.0)
        return self.start + t * (self.end - self.start)

    def to_data(self):
        if self.end is None:
            return self.start
        return {"linear": [self.start, self.end] + ([self.fraction] if self.fraction != 1.0 else [])}


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise UserError(f"{key}={value!r} is not a number; give e.g. {key}=0.001")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{key}={str(value)[:40]!r} is not a number (or not a finite one); give e.g. {key}=0.001") from None
    if not math.isfinite(out):
        raise UserError(f"{key}={value!r} must be finite")
    return out


def _to_int(value: Any, key: str, example: str | None = None) -> int:
    """`example`: the value the message suggests (a list field's is a list: hidden=64,64)."""
    hint = f"give e.g. {key}={example or 64}"
    if isinstance(value, bool):
        raise UserError(f"{key}={value!r} is not an integer; {hint}")
    if isinstance(value, str):
        value = value.replace("_", "")
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{key}={str(value)[:40]!r} is not an integer; {hint}") from None
    if not math.isfinite(f):
        raise UserError(f"{key}={value!r} is not a finite integer; {hint}")
    if not f.is_integer():
        raise UserError(f"{key}={value!r} is not an integer; give e.g. {key}={example or int(f)}")
    return int(f)


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise UserError(f"{key}={value!r} is not a boolean; give {key}=true or {key}=false")


def to_schedule(value: Any, key: str) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict) and set(value) == {"linear"}:
        args = value["linear"]
        if isinstance(args, (list, tuple)) and len(args) in (2, 3):
            nums = [_to_float(a, key) for a in args]
            if len(nums) == 3 and not 0 < nums[2] <= 1:
                raise UserError(f"{key}: the linear fraction must be in (0, 1], got {nums[2]}")
            return Schedule(*nums)
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                parsed = yaml.safe_load(value)
            except (yaml.YAMLError, RecursionError) as e:  # RecursionError: nested thousands deep
                why = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0]
                raise UserError(f"{key}={value[:60]!r}{'...' if len(value) > 60 else ''} is not valid YAML ({why}); "
                                f"write e.g. '{key}={{linear: [0.001, 0]}}'") from None
            return to_schedule(parsed, key)
        return Schedule(_to_float(value, key))
    raise UserError(
        f"{key}={value!r} is not a number or a schedule; give e.g. {key}=0.001 or "
        f"'{key}={{linear: [0.001, 0]}}'"
    )


def _to_int_tuple(value: Any, key: str) -> tuple[int, ...]:
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        value = [v for v in text.replace(" ", "").split(",") if v] if text else []
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{key}={value!r} is not a list of integers; give e.g. {key}=64,64")
    return tuple(_to_int(v, key, "64,64") for v in value)



def coerce(cls, key: str, value: Any) -> Any:
    """Convert `value` to the declared type of field `key` of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        names = [f.name for f in dataclasses.fields(cls)]
        if key in {f.name for f in dataclasses.fields(EnvCard)}:
            raise UserError(f"'{key}' is an env-card field, not a hyperparameter: set it in the env card "
                            f"(cards/envs/<EnvId>.yaml; the last line of `rlsuite list` names the folder)")
        if key in sb3_names(cls):  # the zoo's / SB3's name for a field rlsuite names otherwise
            ours = sb3_names(cls)[key]
            raise UserError(f"unknown hyperparameter '{key}' for {cls.__name__}: that is the zoo's (SB3's) name; "
                            f"rlsuite calls it {ours} (--set {ours}=...)")
        others = [name for name, spec in agent_configs().items() if key in {f.name for f in dataclasses.fields(spec)}]
        if others:  # a real setting, of other agents
            raise UserError(f"'{key}' is a setting of {', '.join(others)}, not of "
                            f"{getattr(cls, 'agent_name', cls.__name__)}; `rlsuite list "
                            f"{getattr(cls, 'agent_name', '')}` shows the valid ones")
        raise UserError(
            f"unknown hyperparameter '{key}' for {cls.__name__}{close_matches(key, names)}; "
            f"`rlsuite list {getattr(cls, 'agent_name', '')}` shows the valid ones"
        )
    kind = hints[key]
    meta = next(f for f in dataclasses.fields(cls) if f.name == key).metadata
    optional = type(None) in typing.get_args(kind)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        out = _to_bool(value, key)
    elif kind is int:
        out = _to_int(value, key)
    elif kind is float:
        out = _to_float(value, key)
    elif kind is Schedule:
        out = to_schedule(value, key)
    elif kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{key}={value!r} must be a string")
        out = str(value)
    elif typing.get_origin(kind) is tuple:
        out = _to_int_tuple(value, key)
    else:  # pragma: no cover - a new field type without a converter is a programming error
        raise TypeError(f"no converter for field {key}: {kind}")
    choices = meta.get("choices")
    if choices and out not in choices:
        raise UserError(f"{key}={out!r} is not one of {', '.join(map(str, choices))}")
    return out


def apply(config, values: dict, source: str):
    """A copy of `config` with `values` (from `source`, for error messages) coerced and set."""
    if not isinstance(values, dict):
        raise UserError(f"{source}: expected a mapping of hyperparameters, got {type(values).__name__}")
    updates = {}
    for key, value in values.items():
        try:
            updates[key] = coerce(type(config), str(key), value)
        except UserError as e:
            raise UserError(f"{source}: {e}") from None
    out = dataclasses.replace(config, **updates)
    check = getattr(out, "validate", None)
    if check:
        check()
    return out


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """['lr=1e-3', 'hidden=64,64'] -> {'lr': '1e-3', 'hidden': '64,64'}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} is not key=value; write e.g. --set lr=0.001")
        out[key.strip()] = value.strip()
    return out


def to_data(config) -> dict:
    """A config as plain YAML-able data (schedules as {linear: [...]}, tuples as lists)."""
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, Schedule):
            v = v.to_data()
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def describe(cls) -> list[tuple[str, str, str]]:
    """(name, default, help) for every field of a config class."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, Schedule):
            default = default.to_data()
        rows.append((f.name, str(default), f.metadata.get("help", "")))
    return rows


# ---------------------------------------------------------------------------------------------
# Fields every agent shares: the budget, vectorisation, evaluation and bookkeeping.
MAX_STEPS = 10**10  # a budget beyond this is a typo: it would train for years on one machine


def require(config, names, ok, what: str) -> None:
    """One-line error for the first field among `names` whose value fails `ok` ('must be WHAT')."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, Schedule):  # a schedule may anneal to 0 (e.g. lr {linear: [1e-3, 0]})
            good = ok(value.start) and (value.end is None or value.end == 0 or ok(value.end))
        else:
            good = ok(value)
        if not good:
            shown = value.to_data() if isinstance(value, Schedule) else list(value) if isinstance(value, tuple) else value
            raise UserError(f"{name} must be {what}, got {shown}")


def check_seed(seed, what: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UserError(f"{what} must be an integer in [0, 2^32), got {seed!r}")
    return seed


def check_steps(steps, what: str = "--steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= MAX_STEPS:
        raise UserError(f"{what} must be a number of environment steps in [1, {MAX_STEPS:.0e}], got {steps!r}")
    return steps


def positive(v) -> bool:
    return v is not None and v > 0


@dataclass
class CommonConfig:
    """What every run has. Runs of SB3 baselines have these too (the same engine runs them), so the run settings
    declare SB3's side under their own names."""

    total_steps: int = param(100_000, "environment steps to train for (summed over vector envs)", sb3="n_timesteps")
    num_envs: int = param(1, "parallel environments in the training vector env", sb3="n_envs")
    eval_every: int = param(10_000, "environment steps between evaluations", sb3="eval_every")
    eval_episodes: int = param(10, "episodes per periodic evaluation (deterministic policy)", sb3="eval_episodes")
    final_eval_episodes: int = param(20, "episodes in the final evaluation", sb3="final_eval_episodes")
    eval_deterministic: bool = param(True, "evaluate the deterministic policy, as the protocol does; false: sample "
                                           "actions (the policy's distribution; DQN ε-greedy at its final ε; TD3 "
                                           "its exploration noise), reported apart", sb3="eval_deterministic")
    checkpoint_every: int | None = param(None, "environment steps between checkpoints (none: by time only)",
                                          sb3="checkpoint_every")
    checkpoint_minutes: float = param(2.0, "wall-clock minutes between checkpoints; also at the end and on a stop",
                                      sb3="checkpoint_minutes")
    save_buffer: bool = param(True, "include the replay buffer in checkpoints (exact resume)", sb3="save_buffer")
    video_every: int | None = param(None, "film one greedy episode into RUN/videos every N-th evaluation "
                                          "(the video extra; none: no videos during training)", sb3="video_every")
    torch_threads: int = param(1, "torch intra-op threads (1 is fastest for small nets on CPU)")

    def validate(self):
        require(self, ("num_envs", "eval_every", "eval_episodes", "final_eval_episodes", "torch_threads"),
                positive, "positive")
        require(self, ("total_steps",), lambda v: 0 < v <= MAX_STEPS, f"in [1, {MAX_STEPS:.0e}] environment steps")
        require(self, ("num_envs",), lambda v: v <= 4096, "at most 4096")
        require(self, ("torch_threads",), lambda v: v <= 256, "at most 256")
        require(self, ("eval_episodes", "final_eval_episodes"), lambda v: v <= 10_000, "at most 10000")
        require(self, ("checkpoint_every", "video_every"), lambda v: v is None or v > 0, "positive (or none)")
        require(self, ("checkpoint_minutes",), positive, "positive")


def agent_configs() -> dict[str, type]:
    """Agent name -> config class, for every agent config defined so far (each agent module defines one,
    a subclass of CommonConfig with an `agent_name`); used for hints about another agent's fields."""
    found, todo = {}, [CommonConfig]
    while todo:  # breadth first: the order the agent modules define them
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        name = cls.__dict__.get("agent_name")
        if isinstance(name, str):
            found.setdefault(name, cls)
    return found


def require_hidden(config) -> None:
    require(config, ("hidden",), lambda h: len(h) > 0 and all(0 < n <= 65_536 for n in h),
            "a non-empty list of layer sizes in [1, 65536] (e.g. 64,64)")


# ---------------------------------------------------------------------------------------------
BACKENDS = ("gymnasium", "torch")


@dataclass
class EnvCard:
    """What an env needs beyond its id: wrappers, the solve threshold, evaluation settings."""

    id: str
    threshold: float | None = None  # None -> gymnasium's reward_threshold
    threshold_source: str = "gymnasium reward_threshold"
    max_return: float | None = None  # the best possible return, where there is one (CartPole-v1: 500)
    wrappers: list = field(default_factory=list)  # [{name: WrapperName, kwargs: {...}, train_only: bool}]
    eval_every: int | None = None
    eval_episodes: int | None = None
    final_eval_episodes: int | None = None
    budget: int | dict | None = None  # benchmark budget in env steps: one number, or {agent: steps}
    # sync | async | native (the env's own vector entry point) | envpool | auto (envpool when installed, else async)
    vectorization: str = "sync"
    # gymnasium: the env's own classes, vectorized as above | torch: batched dynamics of the same env
    # (rlsuite.envs.torch_classic; classic control only), all sub-envs stepped by one set of array operations
    backend: str = "gymnasium"
    make_kwargs: dict = field(default_factory=dict)  # gym.make arguments; `--env-kwargs KEY=VALUE` overrides
    frame_stack: int = 1  # > 1: the last N observations stacked (FrameStackObservation), after the wrappers
    notes: str = ""

    def budget_for(self, agent: str) -> int | None:
        """The benchmark budget `rlsuite bench` gives AGENT here (ours and SB3 alike), or None."""
        if isinstance(self.budget, dict):
            return self.budget.get(agent)
        return self.budget

    @property
    def eval_settings(self) -> dict:
        keys = ("eval_every", "eval_episodes", "final_eval_episodes")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def check_env_card(card: EnvCard, source: str) -> EnvCard:
    """Types and ranges of every env-card field; `source` names the file in the one-line error."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return (is_int(v) or isinstance(v, float)) and math.isfinite(v)

    budget = card.budget
    steps = list(budget.values()) if isinstance(budget, dict) else [] if budget is None else [budget]
    if not all(is_int(n) and 0 < n <= MAX_STEPS for n in steps):
        raise UserError(f"{source}: budget must be a positive number of steps or {{agent: steps}}, got {budget!r}")
    for name in ("threshold", "max_return"):
        if getattr(card, name) is not None and not is_num(getattr(card, name)):
            raise UserError(f"{source}: {name} must be a number (or null), got {getattr(card, name)!r}")
    for name in ("eval_every", "eval_episodes", "final_eval_episodes"):
        v = getattr(card, name)
        if v is not None and not (is_int(v) and v > 0):
            raise UserError(f"{source}: {name} must be a positive integer (or null), got {v!r}")
    if card.vectorization not in ("sync", "async", "native", "envpool", "auto"):
        raise UserError(f"{source}: vectorization must be sync, async, native, envpool or auto, got {card.vectorization!r}")
    if card.backend not in BACKENDS:
        raise UserError(f"{source}: backend must be gymnasium or torch, got {card.backend!r}")
    if not (is_int(card.frame_stack) and 1 <= card.frame_stack <= 64):
        raise UserError(f"{source}: frame_stack must be an integer in [1, 64], got {card.frame_stack!r}")
    if not isinstance(card.wrappers, list):
        raise UserError(f"{source}: wrappers must be a list, got {card.wrappers!r}")
    if not isinstance(card.make_kwargs, dict):
        raise UserError(f"{source}: make_kwargs must be a mapping, got {card.make_kwargs!r}")
    if not isinstance(card.id, str) or not card.id:
        raise UserError(f"{source}: id must be an env id string, got {card.id!r}")
    return card

