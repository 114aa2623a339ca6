"""The zoo's hyperparameters for SB3 (the agent card's `baseline:` section) and their mapping to and
from rlsuite's config fields, so that `compare` runs both sides on the same settings where both have them.
"""

from __future__ import annotations

import dataclasses
import inspect

import yaml

from rlsuite.config.cards import budget, load_agent_card, load_env_card
from rlsuite.config.schema import CommonConfig, Schedule, coerce, sb3_specs, to_schedule
from rlsuite.config.zoo import NOT_SET, image_policy
from rlsuite.core.errors import UserError
from rlsuite.core.seeding import SEEDING
from rlsuite.registry import get_agent

SB3_ALGORITHMS = {"dqn": "DQN", "a2c": "A2C", "ppo": "PPO", "sac": "SAC", "td3": "TD3"}
_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
_OURS = ("n_timesteps", "n_envs", "policy", "net_arch", "activation_fn", "normalize", "source", "notes",
         "features_extractor", "features_dim", "share_features_extractor", "noise_type", "noise_std")


@dataclasses.dataclass
class BaselineConfig(CommonConfig):
    """An SB3 run's own settings: the budget, evaluation and bookkeeping fields every run has (SB3's
    hyperparameters are recorded in its config.yaml's `baseline` section)."""

    agent_name = "baseline"


def baseline_hyperparameters(agent: str, env_id: str) -> tuple[dict, str]:
    """(hyperparameters, source) from the card's baseline section; SB3 defaults where it has none."""
    if agent not in SB3_ALGORITHMS:
        raise UserError(f"SB3 has no counterpart for '{agent}'; baselines exist for {', '.join(SB3_ALGORITHMS)}")
    section = load_agent_card(agent).get("baseline") or {}
    if env_id in section:
        return dict(section[env_id]), "rl-baselines3-zoo (recorded in the agent card)"
    return {}, "SB3 defaults (the card records no zoo values for this env)"


# SB3's default network per algorithm (a policy's default, not an argument of the algorithm's constructor)
SB3_NET_ARCH = {"dqn": [64, 64], "a2c": [64, 64], "ppo": [64, 64], "sac": [256, 256], "td3": [400, 300]}


def sb3_defaults(agent: str) -> dict:
    """SB3's defaults for AGENT's algorithm, read from its constructor, with the zoo's own conventions."""
    import stable_baselines3 as sb3  # heavy; loaded only for SB3 comparisons

    signature = inspect.signature(getattr(sb3, SB3_ALGORITHMS[agent]).__init__)
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, "n_envs": 1, "policy": "MlpPolicy", "net_arch": SB3_NET_ARCH[agent]}


def overrides_from_sb3(agent: str, hp: dict, env_id: str | None = None) -> dict:
    """The zoo's values for AGENT (SB3's defaults where it has none) as rlsuite --set overrides, field by field
    from what each config field declares about SB3 (rlsuite.config.zoo); the budget only where the zoo gives one."""
    defaults = sb3_defaults(agent)
    if image_policy(hp):  # a CNN policy's default head is its features layer alone (NatureCNN's 512)
        defaults.pop("net_arch")
    full = {**defaults, **hp}
    out = {}
    for name, spec in sb3_specs(get_agent(agent).config_cls).items():
        if spec.fixed is not NOT_SET:
            value = spec.fixed
        elif spec.from_zoo is not None:
            value = spec.from_zoo(full, agent, env_id)
        elif spec.name is not None and spec.name in full and (name != "total_steps" or spec.name in hp):
            value = full[spec.name]
        else:
            continue
        if value is not None:
            out[name] = value
    if "total_steps" in out:
        out["total_steps"] = int(out["total_steps"])
    return out


def _sb3_schedule(value, key: str):
    """Card data -> what SB3 takes: a constant, or f(progress_remaining) for {linear: [a, b]}."""
    sched: Schedule = to_schedule(value, key)
    if sched.end is None:
        return sched.start
    return lambda progress_remaining: sched(1.0 - progress_remaining)


def _sb3_value(value):
    """A --set value as SB3 takes it: YAML read safely, numbers where YAML 1.1 left strings (1e-3)."""
    def numbers(v):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        if isinstance(v, list):
            return [numbers(x) for x in v]
        if isinstance(v, dict):
            return {k: numbers(x) for k, x in v.items()}
        return v

    return numbers(yaml.safe_load(value) if isinstance(value, str) else value)


def as_sb3_data(value):
    """A coerced rlsuite value as card data SB3's side takes: a schedule as {linear: [...]}, a tuple as a list."""
    if isinstance(value, Schedule):
        return value.to_data()
    return list(value) if isinstance(value, tuple) else value


def sb3_overrides_for(overrides: dict, agent: str | None = None, hp: dict | None = None) -> tuple[dict, list[str]]:
    """(the SB3 arguments for those --set keys both sides have, the keys only rlsuite has), as each field declares
    it (rlsuite.config.zoo): the same setting under SB3's name, or in SB3's form where it differs (hidden ->
    net_arch, TD3's action_noise -> noise_std, SAC's ent_coef_init -> ent_coef="auto_<init>"), given the card's
    zoo values `hp`. A name this SB3 algorithm lacks is rlsuite's alone. Without an agent: the run settings
    every SB3 algorithm names alike."""
    hp = hp or {}
    if agent in SB3_ALGORITHMS:
        cls = get_agent(agent).config_cls
        specs = sb3_specs(cls)
    else:  # the settings every SB3 algorithm names alike, under the name they have there
        cls = None
        specs = {k: v for a in SB3_ALGORITHMS for k, v in sb3_specs(get_agent(a).config_cls).items()
                 if v.to_sb3 is None and v.name}
    accepted = None
    if agent in SB3_ALGORITHMS:
        import stable_baselines3 as sb3  # heavy; loaded only for SB3 comparisons

        accepted = set(inspect.signature(getattr(sb3, SB3_ALGORITHMS[agent]).__init__).parameters)
        accepted |= {f.name for f in dataclasses.fields(BaselineConfig)} | set(_OURS)
    out, ours_only = {}, []
    for key, value in overrides.items():
        spec = specs.get(key)
        ours = coerce(cls, key, value) if cls and spec else None  # as rlsuite reads it: hidden=64,64 -> (64, 64)
        translated = None
        if cls and spec and spec.to_sb3:
            translated = spec.to_sb3(ours, agent, hp, overrides)
        elif cls and spec and spec.fixed is not NOT_SET:  # SB3 always runs as `fixed`: that value changes nothing
            translated = {} if ours == spec.fixed else None
        if translated is not None:
            out.update(translated)
        elif spec is not None and spec.to_sb3 is None and spec.name and (accepted is None or spec.name in accepted):
            out[spec.name] = _sb3_value(value) if cls is None else as_sb3_data(ours)
        else:
            ours_only.append(key)
    return out, ours_only


def baseline_fingerprint(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> dict:
    """What makes two SB3 runs the same experiment: the algorithm, the env card, the budget and the values."""
    hp, source = baseline_hyperparameters(agent, env_id)
    hp.update(overrides or {})
    steps = steps if steps is not None else budget(agent, get_agent(agent).config_cls, env_id)
    return {"agent": f"sb3-{agent}", "env_id": env_id, "steps": steps, "hyperparameters": hp,
            "env_card": dataclasses.asdict(load_env_card(env_id)), "seeding": SEEDING}


def zoo_as_rlsuite(agent: str, env_id: str) -> dict:
    """The zoo's values for AGENT on ENV_ID expressed as rlsuite --set overrides (the budget aside)."""
    zoo, _ = baseline_hyperparameters(agent, env_id)
    as_ours = overrides_from_sb3(agent, zoo, env_id)
    as_ours.pop("total_steps", None)
    return as_ours
