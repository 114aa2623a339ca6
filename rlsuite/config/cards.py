"""Agent cards (cards/agents/*.yaml) and env cards (cards/envs/*.yaml): finding, reading and resolving them into the
typed configs of rlsuite.config.schema.

Resolution order for an agent's hyperparameters, later wins:
  dataclass defaults -> card `default:` -> env card eval settings -> card `envs: {ENV_ID: ...}`
  -> `--set key=value` overrides.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import math
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from rlsuite.config.schema import EnvCard, apply, check_env_card
from rlsuite.core.errors import UserError, close_matches


# ---------------------------------------------------------------------------------------------
# Where the cards are: inside the package in a wheel, at the repository root in a checkout.
def cards_root() -> Path:
    """The folder holding agents/ and envs/: inside the package in a wheel, cards/ in a checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_cards"
    if (packaged / "agents").is_dir():
        return packaged
    return package.parent / "cards"


def read_yaml(path: Path) -> Any:
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} ({getattr(e, 'strerror', None) or type(e).__name__}); give a YAML file") from None
    except (yaml.YAMLError, RecursionError) as e:  # RecursionError: nested thousands deep
        first = str(e).splitlines()[0]
        raise UserError(f"{path} is not valid YAML ({first}); fix the file") from None


def parse_env_kwargs(items: list[str] | tuple[str, ...]) -> dict:
    """['repeat_action_probability=0', 'full_action_space=true'] -> typed values (YAML scalars, read safely;
    '1e-3', which YAML 1.1 reads as a string, is a number here)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"--env-kwargs {item!r} is not name=value; write e.g. --env-kwargs repeat_action_probability=0")
        if key == "render_mode":
            raise UserError("--env-kwargs render_mode is not a training setting; use `rlsuite eval RUN --video DIR` to watch")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except (yaml.YAMLError, RecursionError):
            raise UserError(f"--env-kwargs {item!r}: {value!r} is not a plain value") from None
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        if isinstance(parsed, (dict, list)):
            raise UserError(f"--env-kwargs {item!r}: give one number, boolean or string per argument")
        out[key] = parsed
    return out


def check_env_kwargs(card: "EnvCard", env_kwargs: dict) -> None:
    """A value must have the type the card's own make_kwargs entry has, and a probability lies in [0, 1]."""
    for key, value in env_kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--env-kwargs {key}={value!r}: give a finite number (the env's dynamics would turn "
                            "NaN or infinity into a run of NaNs)")
        if key in card.make_kwargs and card.make_kwargs[key] is not None:
            want = card.make_kwargs[key]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = isinstance(value, bool) if isinstance(want, bool) else number if isinstance(want, (int, float)) else True
            if not ok:
                raise UserError(f"--env-kwargs {key}={value!r}: {card.id}'s card has {key}: {want!r}; give a "
                                f"{'true/false' if isinstance(want, bool) else 'number'}")
        if "prob" in key and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
            raise UserError(f"--env-kwargs {key}={value!r}: a probability must be a number in [0, 1]")


def env_card_path(env_id: str) -> Path:
    return cards_root() / "envs" / f"{env_id.replace(':', '__').replace('/', '__')}.yaml"


# An Atari id without a card of its own gets the standard preprocessing (as the zoo's AtariWrapper and
# CleanRL apply it to every game): raw 210x160 RGB frames would make a replay memory ~20x larger.
ATARI_DEFAULTS = {
    "threshold_source": "none (an Atari game without a card: scores are reported, not solve rates)",
    "eval_every": 100_000, "eval_episodes": 5, "final_eval_episodes": 10, "vectorization": "async",
    "make_kwargs": {"frameskip": 1, "repeat_action_probability": 0.25, "full_action_space": False},
    "frame_stack": 4,
    "budget": {"dqn": 10_000_000, "ppo": 10_000_000},
    "wrappers": [{"name": "AtariPreprocessing", "kwargs": {"noop_max": 30, "frame_skip": 4, "screen_size": 84,
                                                           "grayscale_obs": True}},
                 {"name": "rlsuite.envs.atari:EpisodicLife", "train_only": True},
                 {"name": "rlsuite.envs.atari:FireReset"},
                 {"name": "ClipReward", "kwargs": {"min_reward": -1, "max_reward": 1}, "train_only": True}],
    "notes": "No env card: rlsuite's standard Atari preprocessing (rlsuite/config/cards.py ATARI_DEFAULTS).",
}


def load_env_card(env_id: str) -> EnvCard:
    path = env_card_path(env_id)
    if not path.exists():
        if env_id.startswith("ALE/"):
            return EnvCard(id=env_id, **copy.deepcopy(ATARI_DEFAULTS))
        return EnvCard(id=env_id)
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: an env card is a mapping of fields, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(EnvCard)}
    unknown = set(data) - names
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{path}: unknown env-card key '{key}'{close_matches(key, names)}")
    if data.get("id", env_id) != env_id:
        raise UserError(f"{path}: id {data['id']!r} does not match the file name ({env_id})")
    data["id"] = env_id
    return check_env_card(EnvCard(**data), str(path))


def agent_card_path(agent: str) -> Path:
    return cards_root() / "agents" / f"{agent}.yaml"


def load_agent_card(agent: str) -> dict:
    data = read_yaml(agent_card_path(agent)) or {}
    if not isinstance(data, dict):
        raise UserError(f"{agent_card_path(agent)}: an agent card is a mapping, got {type(data).__name__}")
    unknown = set(data) - {"agent", "description", "default", "envs", "baseline", "nets", "datasets", "tune"}
    if unknown:
        raise UserError(f"{agent_card_path(agent)}: unknown top-level key(s) {sorted(unknown)}")
    return data


def with_env_kwargs(card: EnvCard, env_kwargs: dict | None) -> EnvCard:
    """The env card with constructor arguments from the command line (`--env-kwargs`) over its own."""
    if not env_kwargs:
        return card
    check_env_kwargs(card, env_kwargs)
    return dataclasses.replace(card, make_kwargs={**card.make_kwargs, **env_kwargs})


def env_entry_key(card: dict, env_id: str) -> str:
    """The agent card's entry for ENV_ID: its own, else the first pattern that matches (e.g. `ALE/*`: every
    Atari game without an entry of its own runs the Atari recipe)."""
    envs = card.get("envs") or {}
    if env_id in envs:
        return env_id
    return next((k for k in envs if any(c in k for c in "*?[") and fnmatch.fnmatchcase(env_id, k)), env_id)


def resolve(agent: str, config_cls, env_id: str, overrides: dict | None = None, env_kwargs: dict | None = None):
    """The config for `agent` on `env_id`: card entries, env card settings, then overrides.

    The budget (`total_steps`) of an (agent, env) pair is written once: in the env card's `budget` where it
    has one for the agent, else in the agent card (its entry for the env, else its default). `train`,
    `baseline`, `compare` and the benchmarks all read it from here."""
    card = load_agent_card(agent)
    env_card = with_env_kwargs(load_env_card(env_id), env_kwargs)
    path = agent_card_path(agent)
    config = config_cls()
    config = apply(config, card.get("default") or {}, f"{path} [default]")
    config = apply(config, env_card.eval_settings, f"{env_card_path(env_id)}")
    key = env_entry_key(card, env_id)
    entry = (card.get("envs") or {}).get(key) or {}
    budget = env_card.budget_for(agent)
    if budget is not None and isinstance(entry, dict) and "total_steps" in entry:
        raise UserError(f"{path} [{key}]: total_steps is also set by the env card's budget for {agent} "
                        f"({env_card_path(env_id)}); a budget is written in one place, remove one of them")
    config = apply(config, entry, f"{path} [{key}]")
    if budget is not None:
        config = apply(config, {"total_steps": budget}, f"{env_card_path(env_id)} [budget]")
    config = apply(config, overrides or {}, "--set")
    return config, env_card


def budget(agent: str, config_cls, env_id: str) -> int:
    """The one budget of AGENT on ENV_ID, in environment steps (see resolve)."""
    return resolve(agent, config_cls, env_id)[0].total_steps


# ---------------------------------------------------------------------------------------------
# A run directory someone hands you must not run code: its env id ('package.module:EnvId') and wrappers
# ('package.module:Class') name modules that building its env would import.
TRUST_VARIABLE = "RLSUITE_TRUSTED_MODULES"  # comma-separated module names, or * for any


def trust_imports(*modules: str) -> None:
    """Allow the run directories this process reads to import these modules (none given: any module). Child
    processes inherit the allowance."""
    current = [m for m in os.environ.get(TRUST_VARIABLE, "").split(",") if m]
    os.environ[TRUST_VARIABLE] = ",".join(dict.fromkeys(current + (list(modules) or ["*"])))


FILE_WRITING_WRAPPERS = ("RecordVideo", "HumanRendering", "RenderCollection")  # gymnasium.wrappers that write or show


def imported_modules(card: EnvCard) -> list[str]:
    """The modules building `card`'s env imports by name (its id's and its wrappers' 'module:' parts)."""
    names = [card.id, *[w.get("name") if isinstance(w, dict) else w for w in card.wrappers]]
    return [name.partition(":")[0] for name in names if isinstance(name, str) and ":" in name]


def check_trusted_imports(card: EnvCard, source: str) -> None:
    """Refuse a run directory whose env would import a module that is neither rlsuite's or gymnasium's own, nor
    already imported in this process, nor allowed (trust_imports / --trust-imports / RLSUITE_TRUSTED_MODULES)."""
    allowed = {m for m in os.environ.get(TRUST_VARIABLE, "").split(",") if m}
    if "*" in allowed:
        return
    fix = ("if you trust this run directory, pass --trust-imports (rlsuite --trust-imports COMMAND ...), set "
           f"{TRUST_VARIABLE}={{module}}, or call rlsuite.trust_imports('{{module}}') in Python")
    for module in imported_modules(card):
        top = module.split(".")[0]
        trusted = any(module == m or module.startswith(m + ".") for m in allowed)  # a package covers its modules
        if top in ("rlsuite", "gymnasium") or module in sys.modules or trusted:
            continue
        raise UserError(f"{source} names the module '{module}' (env '{card.id}'), which building its env would import "
                        f"and so run; {fix.format(module=module)}")
    # gymnasium's own wrappers and arguments that write files or open windows where the run directory says
    wrappers = [w.get("name") if isinstance(w, dict) else w for w in card.wrappers]
    risky = [w for w in wrappers if w in FILE_WRITING_WRAPPERS] + (["render_mode"] if "render_mode" in card.make_kwargs else [])
    if risky and "gymnasium" not in allowed:
        raise UserError(f"{source} asks for {', '.join(map(str, risky))}, which would write files or open windows where "
                        f"the run directory says; {fix.format(module='gymnasium')}")


def env_card_from_data(data: dict | None, source: str) -> EnvCard | None:
    """The env card a run directory recorded in its config.yaml (None for a run without an env); a module it would
    import must be trusted (check_trusted_imports)."""
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(EnvCard)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"{source}: unknown env-card key '{unknown[0]}' (valid: {', '.join(sorted(names))})")
    if "id" not in data:
        raise UserError(f"{source}: the env card has no 'id'")
    card = check_env_card(EnvCard(**data), source)
    for key, value in card.make_kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{source}: make_kwargs {key}={value!r} is not a finite number; the file was edited, restore it")
    check_trusted_imports(card, source)
    return card
