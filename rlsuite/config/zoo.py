"""How a config field corresponds to Stable-Baselines3's argument of the same meaning (and to
rl-baselines3-zoo's hyperparameter, which uses SB3's names).

A field declares it next to its definition, `param(..., sb3="learning_rate")` for the same meaning and form
under another name, or `param(..., sb3=SB3(...))` where the form differs or SB3 has no such setting. From those
declarations rlsuite.sb3 maps the zoo's values onto rlsuite's fields (`compare`'s list of what differs, runs at
the zoo's values) and `compare --set` onto SB3's arguments, and an SB3 name given to `--set` is answered with
rlsuite's. The form functions here are pure: SB3 itself is never imported in this layer.

A from_zoo function takes (hp, agent, env_id): the zoo's values with SB3's defaults filled in, and returns the
field's value (None: leave the field alone). A to_sb3 function takes (value, agent, hp, overrides): the value as
rlsuite reads it, the card's zoo values and every --set given, and returns SB3's arguments (None: SB3 has no way
to express it, so the setting is rlsuite's alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym

from rlsuite.core.errors import UserError

NOT_SET = object()


@dataclass(frozen=True)
class SB3:
    name: str | None = None  # SB3's argument of the same meaning (the form is the same unless to_sb3 says otherwise)
    fixed: Any = NOT_SET  # SB3 has no such setting and always runs as this value
    from_zoo: Callable | None = None
    to_sb3: Callable | None = None


def image_policy(hp: dict) -> bool:
    """Whether SB3 runs a CNN here (on images rlsuite's hidden sizes and SB3's net_arch are different layers)."""
    return hp.get("features_extractor") is not None or hp.get("policy") == "CnnPolicy"


# -- network shape ------------------------------------------------------------------------------------------
def hidden_from_zoo(hp: dict, agent: str, env_id: str | None):
    """rlsuite's `hidden`: on images the features layer's width (NatureCNN's 512, or the rlsuite CNN's
    features_dim) and any further layers, else net_arch ({pi, vf} or {pi, qf}: the actor's sizes, which
    rlsuite's critics share)."""
    if hp.get("features_extractor") == "cnn":
        return [int(hp.get("features_dim", 128))] + list(hp.get("net_arch") or [])
    if hp.get("policy") == "CnnPolicy":
        return [512] + list(hp.get("net_arch") or [])
    arch = hp.get("net_arch")
    if isinstance(arch, dict):
        return arch.get("pi", arch.get("qf"))
    return arch


def hidden_to_sb3(value, agent: str, hp: dict, overrides: dict):
    if image_policy(hp):
        return None
    sizes = list(value)
    return {"net_arch": {"pi": sizes, "vf": sizes} if agent in ("a2c", "ppo") else sizes}


def activation_to_sb3(value, agent: str, hp: dict, overrides: dict):
    return None if image_policy(hp) else {"activation_fn": value}


def pg_activation_from_zoo(hp: dict, agent: str, env_id: str | None):
    """SB3's actor-critic MLPs use tanh unless the zoo names another activation."""
    if "activation_fn" in hp:
        return hp["activation_fn"]
    return "tanh" if hp.get("policy", "MlpPolicy") == "MlpPolicy" and not hp.get("features_extractor") else None


def share_trunk_from_zoo(hp: dict, agent: str, env_id: str | None):
    """SB3 shares the features extractor of a CNN policy unless told otherwise."""
    return bool(hp.get("share_features_extractor", True)) if image_policy(hp) else None


def log_std_init_from_zoo(hp: dict, agent: str, env_id: str | None):
    value = (hp.get("policy_kwargs") or {}).get("log_std_init")
    return None if value is None else float(value)


def log_std_init_to_sb3(value, agent: str, hp: dict, overrides: dict):
    return {"policy_kwargs": {**(hp.get("policy_kwargs") or {}), "log_std_init": value}}


def normalize_from_zoo(hp: dict, agent: str, env_id: str | None):
    """The zoo's `normalize` is VecNormalize: observations and rewards both."""
    return bool(hp.get("normalize", False))


def optimizer_from_zoo(hp: dict, agent: str, env_id: str | None):
    return "rmsprop" if agent == "a2c" else "adam"  # SB3's A2C uses RMSprop, its PPO Adam


# -- off-policy update cadence --------------------------------------------------------------------------------
def steps_per_update(train_freq, env_id: str | None) -> int:
    """SB3's train_freq (n, or [n, "episode"]) in env steps; an episode counts as the env's time limit."""
    if isinstance(train_freq, (list, tuple)):
        n, unit = train_freq
        if unit == "episode":
            limit = gym.spec(env_id).max_episode_steps if env_id else None
            if not limit:
                raise UserError(f"train_freq {list(train_freq)} counts episodes, and {env_id} has no fixed episode length")
            return int(n) * int(limit)
        return int(n)
    return int(train_freq)


def train_freq_from_zoo(hp: dict, agent: str, env_id: str | None):
    """SB3 counts train_freq in vector steps (calls to env.step), rlsuite in env steps: with n_envs envs, SB3's
    train_freq n is n × n_envs env steps."""
    return steps_per_update(hp["train_freq"], env_id) * int(hp.get("n_envs", 1))


def train_freq_to_sb3(value, agent: str, hp: dict, overrides: dict):
    """rlsuite's train_freq (env steps) as SB3's (vector steps of n_envs envs); None (a difference the report
    lists) where it is not a whole number of vector steps."""
    n_envs = int(overrides.get("num_envs", hp.get("n_envs", 1)))
    return {"train_freq": value // n_envs} if value % n_envs == 0 else None


def gradient_steps_from_zoo(hp: dict, agent: str, env_id: str | None):
    """SB3's -1: as many gradient steps as env steps collected since the last update phase (train_freq × n_envs)."""
    steps = int(hp["gradient_steps"])
    return train_freq_from_zoo(hp, agent, env_id) if steps == -1 else steps


def epsilon_from_zoo(hp: dict, agent: str, env_id: str | None):
    return {"linear": [hp["exploration_initial_eps"], hp["exploration_final_eps"], hp["exploration_fraction"]]}


# -- SAC's entropy coefficient: one SB3 argument for two rlsuite fields ---------------------------------------
def ent_coef_from_zoo(hp: dict, agent: str, env_id: str | None):
    ent = str(hp["ent_coef"])
    return None if ent.startswith("auto") else float(ent)


def ent_coef_init_from_zoo(hp: dict, agent: str, env_id: str | None):
    ent = str(hp["ent_coef"])
    return float(ent.split("_", 1)[1]) if ent.startswith("auto_") else None  # "auto_0.1": tuned, from 0.1


def sac_ent_coef_to_sb3(value, agent: str, hp: dict, overrides: dict):
    """ent_coef (a number: fixed; none: tuned) and ent_coef_init as SB3's one ent_coef: a number, "auto" or
    "auto_<start>". Called for either field, it reads both from the --set given."""
    try:  # the --set values as given: either may be the one not yet checked, and a bad one fails on rlsuite's side
        fixed = None if str(overrides.get("ent_coef", "none")).lower() in ("none", "null", "") else float(overrides["ent_coef"])
        start = float(overrides["ent_coef_init"]) if "ent_coef_init" in overrides else None
    except (TypeError, ValueError):
        return None
    if fixed is not None:
        return {"ent_coef": fixed}
    if "ent_coef" not in overrides and not str(hp.get("ent_coef", "auto")).startswith("auto"):
        return {}  # the card's α is fixed on both sides: a start for a tuned one changes nothing
    if start is not None:
        return {"ent_coef": f"auto_{start}"}
    return {"ent_coef": "auto"}


def target_entropy_from_zoo(hp: dict, agent: str, env_id: str | None):
    value = hp.get("target_entropy", "auto")
    return None if value == "auto" else float(value)  # "auto": -dim(A), rlsuite's None


def target_entropy_to_sb3(value, agent: str, hp: dict, overrides: dict):
    return {"target_entropy": "auto" if value is None else value}


# -- TD3's exploration noise ----------------------------------------------------------------------------------
def action_noise_from_zoo(hp: dict, agent: str, env_id: str | None):
    if hp.get("noise_type") not in (None, "normal"):
        raise UserError(f"the zoo's {hp['noise_type']} action noise has no rlsuite counterpart (Gaussian only)")
    return float(hp.get("noise_std", 0.0)) if hp.get("noise_type") else 0.0


def action_noise_to_sb3(value, agent: str, hp: dict, overrides: dict):
    return {"noise_type": "normal" if value else None, "noise_std": value}  # both add it to actions in [-1, 1]


# -- differences SB3 cannot remove ----------------------------------------------------------------------------
def only_if(sb3_value):
    """A setting SB3 always runs as `sb3_value`: --set to that value changes nothing on SB3's side; any other
    value is rlsuite's alone."""
    return lambda value, agent, hp, overrides: {} if value == sb3_value else None
