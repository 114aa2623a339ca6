"""Stable-Baselines3 as the baseline, under rlsuite's protocol.

SB3's DQN / A2C / PPO / SAC / TD3 train with the hyperparameters recorded in the agent card's `baseline:`
section (rl-baselines3-zoo's tuned values) and report through a callback that forwards episodes to
the same `Run` our agents use: same run directory, metrics.csv columns, TensorBoard tags, evaluation
function, seeds and summary.json. Only the learning algorithm differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rlsuite.cards import CommonConfig, EnvCard, Schedule, _to_schedule, apply, load_agent_card, load_env_card
from rlsuite.engine import Run, resolve_device
from rlsuite.rundir import new_run_dir, read_run_config
from rlsuite.envs import make_env, resolve_env_id
from rlsuite.errors import UserError

SB3_ALGORITHMS = {"dqn": "DQN", "a2c": "A2C", "ppo": "PPO", "sac": "SAC", "td3": "TD3"}
_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
_OURS = ("n_timesteps", "n_envs", "policy", "net_arch", "activation_fn", "normalize", "source", "notes",
         "features_extractor", "features_dim", "share_features_extractor", "noise_type", "noise_std")


@dataclass
class BaselineConfig(CommonConfig):
    agent_name = "baseline"


def baseline_hyperparameters(agent: str, env_id: str) -> tuple[dict, str]:
    """(hyperparameters, source) from the card's baseline section; SB3 defaults where it has none."""
    if agent not in SB3_ALGORITHMS:
        raise UserError(f"SB3 has no counterpart for '{agent}'; baselines exist for {', '.join(SB3_ALGORITHMS)}")
    section = load_agent_card(agent).get("baseline") or {}
    if env_id in section:
        return dict(section[env_id]), "rl-baselines3-zoo (recorded in the agent card)"
    return {}, "SB3 defaults (the card records no zoo values for this env)"


def sb3_hidden(hp: dict, default: list) -> list:
    """rlsuite's `hidden` for SB3's network: on images the features layer's width (NatureCNN's 512, or the
    rlsuite CNN's features_dim) with no further layers, else net_arch."""
    if hp.get("features_extractor") == "cnn":
        return [int(hp.get("features_dim", 128))] + list(hp.get("net_arch") or [])
    if hp.get("policy") == "CnnPolicy":
        return [512] + list(hp.get("net_arch") or [])
    arch = hp.get("net_arch", default)
    return arch["pi"] if isinstance(arch, dict) else arch  # {pi, vf}: rlsuite's actor and critic have the same sizes


def dqn_overrides_from_sb3(hp: dict) -> dict:
    """SB3 DQN hyperparameters expressed as rlsuite DQN --set overrides (vanilla DQN, as SB3's)."""
    fraction = hp.get("exploration_fraction", 0.1)
    start, end = hp.get("exploration_initial_eps", 1.0), hp.get("exploration_final_eps", 0.05)
    out = {"lr": hp.get("learning_rate", 1e-4), "batch_size": hp.get("batch_size", 32),
           "buffer_size": hp.get("buffer_size", 1_000_000), "learning_starts": hp.get("learning_starts", 100),
           "gamma": hp.get("gamma", 0.99), "train_freq": hp.get("train_freq", 4),
           "gradient_steps": hp.get("gradient_steps", 1), "tau": hp.get("tau", 1.0),
           "target_update_interval": hp.get("target_update_interval", 10_000),
           "epsilon": {"linear": [start, end, fraction]}, "max_grad_norm": hp.get("max_grad_norm", 10.0),
           "hidden": sb3_hidden(hp, [64, 64]), "double": False, "dueling": False, "n_step": 1,
           "prioritized": False, "loss": "huber"}
    if out["gradient_steps"] == -1:  # SB3: as many gradient steps as env steps collected
        out["gradient_steps"] = out["train_freq"]
    if "n_timesteps" in hp:
        out["total_steps"] = int(hp["n_timesteps"])
    return out


SB3_PG_DEFAULTS = {
    "a2c": {"n_steps": 5, "learning_rate": 7e-4, "gae_lambda": 1.0, "ent_coef": 0.0, "vf_coef": 0.5,
            "max_grad_norm": 0.5, "normalize_advantage": False, "gamma": 0.99},
    "ppo": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-4, "gae_lambda": 0.95,
            "clip_range": 0.2, "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "normalize_advantage": True,
            "gamma": 0.99},
}


def pg_overrides_from_sb3(agent: str, hp: dict) -> dict:
    """SB3 A2C/PPO hyperparameters (defaults filled in) as rlsuite --set overrides."""
    full = {**SB3_PG_DEFAULTS[agent], **hp}
    out = {"num_envs": full.get("n_envs", 1), "n_steps": full["n_steps"], "gamma": full["gamma"],
           "gae_lambda": full["gae_lambda"], "lr": full["learning_rate"], "ent_coef": full["ent_coef"],
           "vf_coef": full["vf_coef"], "max_grad_norm": full["max_grad_norm"],
           "normalize_advantage": full["normalize_advantage"], "hidden": sb3_hidden(full, [64, 64]),
           "normalize_obs": bool(full.get("normalize", False)), "normalize_reward": bool(full.get("normalize", False))}
    extra = full.get("policy_kwargs") or {}
    if "log_std_init" in extra:
        out["log_std_init"] = float(extra["log_std_init"])
    if "activation_fn" in full:
        out["activation"] = full["activation_fn"]
    elif full.get("policy", "MlpPolicy") == "MlpPolicy" and not full.get("features_extractor"):
        out["activation"] = "tanh"  # SB3's default for actor-critic MLPs
    if full.get("policy") == "CnnPolicy" or full.get("features_extractor"):  # SB3 shares the features extractor
        out["share_trunk"] = bool(full.get("share_features_extractor", True))
    if agent == "a2c":  # SB3's A2C uses RMSprop(alpha=0.99, eps=1e-5)
        out.update(optimizer="rmsprop", optimizer_eps=1e-5)
    else:
        out.update(batch_size=full["batch_size"], n_epochs=full["n_epochs"], clip_range=full["clip_range"],
                   optimizer="adam", optimizer_eps=1e-5)
    if "n_timesteps" in hp:
        out["total_steps"] = int(hp["n_timesteps"])
    return out


SB3_OFFPOLICY_DEFAULTS = {
    "sac": {"learning_rate": 3e-4, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256, "tau": 0.005,
            "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "net_arch": [256, 256], "ent_coef": "auto",
            "target_update_interval": 1},
    "td3": {"learning_rate": 1e-3, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256, "tau": 0.005,
            "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "net_arch": [400, 300], "policy_delay": 2,
            "target_policy_noise": 0.2, "target_noise_clip": 0.5},
}


def _steps_per_update(train_freq, env_id: str | None) -> int:
    """SB3's train_freq (n, or [n, "episode"]) in env steps; an episode counts as the env's time limit."""
    if isinstance(train_freq, (list, tuple)):
        n, unit = train_freq
        if unit == "episode":
            import gymnasium as gym

            limit = gym.spec(env_id).max_episode_steps if env_id else None
            if not limit:
                raise UserError(f"train_freq {list(train_freq)} counts episodes, and {env_id} has no fixed episode length")
            return int(n) * int(limit)
        return int(n)
    return int(train_freq)


def offpolicy_overrides_from_sb3(agent: str, hp: dict, env_id: str | None = None) -> dict:
    """SB3 SAC/TD3 hyperparameters (defaults filled in) as rlsuite --set overrides."""
    full = {**SB3_OFFPOLICY_DEFAULTS[agent], **hp}
    every = _steps_per_update(full["train_freq"], env_id)
    out = {"lr": full["learning_rate"], "buffer_size": full["buffer_size"], "learning_starts": full["learning_starts"],
           "batch_size": full["batch_size"], "tau": full["tau"], "gamma": full["gamma"], "train_freq": every,
           "gradient_steps": every if full["gradient_steps"] == -1 else full["gradient_steps"],
           "hidden": full["net_arch"]}
    if isinstance(out["hidden"], dict):  # {pi: [...], qf: [...]}: rlsuite's actor and critics share one size list
        out["hidden"] = out["hidden"].get("pi", out["hidden"].get("qf"))
    if agent == "sac":
        ent = str(full["ent_coef"])
        out.update(ent_coef=None if ent.startswith("auto") else float(ent),
                   target_update_interval=full["target_update_interval"])
        if ent.startswith("auto_"):  # SB3's "auto_0.1": tuned, starting at 0.1
            out["ent_coef_init"] = float(ent.split("_", 1)[1])
    else:
        if full.get("noise_type") not in (None, "normal"):
            raise UserError(f"the zoo's {full['noise_type']} action noise has no rlsuite counterpart (Gaussian only)")
        out.update(policy_delay=full["policy_delay"], target_policy_noise=full["target_policy_noise"],
                   target_noise_clip=full["target_noise_clip"],
                   action_noise=float(full.get("noise_std", 0.0)) if full.get("noise_type") else 0.0)
    if "n_timesteps" in hp:
        out["total_steps"] = int(hp["n_timesteps"])
    return out


def _sb3_schedule(value, key: str):
    """Card data -> what SB3 takes: a constant, or f(progress_remaining) for {linear: [a, b]}."""
    sched: Schedule = _to_schedule(value, key)
    if sched.end is None:
        return sched.start
    return lambda progress_remaining: sched(1.0 - progress_remaining)


# rlsuite field -> SB3 argument, for the settings both implementations have (`compare --set` changes both)
SHARED_SETTINGS = {"total_steps": "n_timesteps", "lr": "learning_rate", "batch_size": "batch_size", "buffer_size": "buffer_size",
                   "learning_starts": "learning_starts", "gamma": "gamma", "train_freq": "train_freq",
                   "gradient_steps": "gradient_steps", "target_update_interval": "target_update_interval",
                   "tau": "tau", "n_steps": "n_steps", "n_epochs": "n_epochs", "ent_coef": "ent_coef",
                   "vf_coef": "vf_coef", "gae_lambda": "gae_lambda", "clip_range": "clip_range",
                   "max_grad_norm": "max_grad_norm", "num_envs": "n_envs", "policy_delay": "policy_delay",
                   "target_policy_noise": "target_policy_noise", "target_noise_clip": "target_noise_clip",
                   "eval_every": "eval_every", "eval_episodes": "eval_episodes",
                   "final_eval_episodes": "final_eval_episodes", "checkpoint_every": "checkpoint_every",
                   "checkpoint_minutes": "checkpoint_minutes", "save_buffer": "save_buffer", "video_every": "video_every"}


def _sb3_value(value):
    """A --set value as SB3 takes it: YAML read safely, numbers where YAML 1.1 left strings (1e-3)."""
    import yaml

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


def _sb3_form(agent: str, key: str, value, hp: dict, overrides: dict) -> dict | None:
    """The SB3 arguments for a setting whose SB3 name or form depends on the agent or the card's baseline
    values `hp` (None: SB3 has no such setting)."""
    from rlsuite.cards import _agent_configs, coerce

    ours = coerce(_agent_configs()[agent], key, value)  # as rlsuite reads it: hidden=64,64 -> (64, 64)
    image = hp.get("features_extractor") is not None or hp.get("policy") == "CnnPolicy"
    if key == "hidden" and not image:  # on images rlsuite's hidden sizes and SB3's net_arch mean different layers
        return {"net_arch": {"pi": list(ours), "vf": list(ours)} if agent in ("a2c", "ppo") else list(ours)}
    if key == "activation" and not image:
        return {"activation_fn": ours}
    if key == "log_std_init" and agent in ("a2c", "ppo"):
        return {"policy_kwargs": {**(hp.get("policy_kwargs") or {}), "log_std_init": ours}}
    if key == "action_noise" and agent == "td3":  # both add it to actions scaled to [-1, 1]
        return {"noise_type": "normal" if ours else None, "noise_std": ours}
    if key == "target_entropy" and agent == "sac":
        return {"target_entropy": "auto" if ours is None else ours}
    if key == "actor_init" and agent in ("sac", "td3"):  # SB3's actors are always nn.Linear's default
        return {} if ours == "torch" else None
    if key == "tanh_eps" and agent == "sac":  # SB3's squashed Gaussian always adds 1e-6
        return {} if ours == 1e-6 else None
    if key in ("ent_coef", "ent_coef_init") and agent == "sac":  # one SB3 argument for the two settings
        return _sac_ent_coef(overrides, hp)
    return None


def _sac_ent_coef(overrides: dict, hp: dict) -> dict:
    """SAC's ent_coef (a number: fixed; none: tuned) and ent_coef_init as SB3's one ent_coef: a number,
    "auto", or "auto_<start>"."""
    from rlsuite.agents.sac_td3 import SACConfig
    from rlsuite.cards import coerce

    fixed = coerce(SACConfig, "ent_coef", overrides["ent_coef"]) if "ent_coef" in overrides else None
    if fixed is not None:
        return {"ent_coef": fixed}
    if "ent_coef" not in overrides and not str(hp.get("ent_coef", "auto")).startswith("auto"):
        return {}  # the card's α is fixed on both sides: a start for a tuned one changes nothing
    if "ent_coef_init" in overrides:
        return {"ent_coef": f"auto_{coerce(SACConfig, 'ent_coef_init', overrides['ent_coef_init'])}"}
    return {"ent_coef": "auto"}


def sb3_overrides_for(overrides: dict, agent: str | None = None, hp: dict | None = None) -> tuple[dict, list[str]]:
    """(the SB3 arguments for those --set keys both sides have, the keys only rlsuite has). With `agent` (and
    the card's baseline values `hp`), settings SB3 names or shapes otherwise are translated (hidden ->
    net_arch, TD3's action_noise -> noise_std, SAC's ent_coef_init -> ent_coef="auto_<init>", ...) and a
    shared name that this SB3 algorithm lacks (SAC's and TD3's max_grad_norm) is rlsuite's alone."""
    hp = hp or {}
    accepted = None
    if agent in SB3_ALGORITHMS:
        import inspect

        import stable_baselines3 as sb3

        accepted = set(inspect.signature(getattr(sb3, SB3_ALGORITHMS[agent]).__init__).parameters)
        accepted |= {f.name for f in dataclasses.fields(BaselineConfig)} | set(_OURS)
    out, ours_only = {}, []
    for key, value in overrides.items():
        translated = _sb3_form(agent, key, value, hp, overrides) if agent in SB3_ALGORITHMS else None
        name = SHARED_SETTINGS.get(key)
        if translated is not None:
            out.update(translated)
        elif name is not None and (accepted is None or name in accepted):
            out[name] = _sb3_value(value)
        else:
            ours_only.append(key)
    return out, ours_only


def baseline_fingerprint(agent: str, env_id: str, steps: int | None = None, overrides: dict | None = None) -> dict:
    hp, source = baseline_hyperparameters(agent, env_id)
    hp.update(overrides or {})
    return {"agent": f"sb3-{agent}", "env_id": env_id, "steps": steps, "hyperparameters": hp,
            "env_card": dataclasses.asdict(load_env_card(env_id))}


def make_model(agent: str, card: EnvCard | str, hp: dict, seed: int, device, n_envs: int):
    """The SB3 model for `hp` on the env card (or the id of one)."""
    import torch
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    card = load_env_card(card) if isinstance(card, str) else card
    envs = make_vec_env(lambda: make_env(card), n_envs=n_envs, seed=seed)
    if hp.get("normalize"):
        from stable_baselines3.common.vec_env import VecNormalize

        envs = VecNormalize(envs, gamma=hp.get("gamma", 0.99))
    kwargs = {k: v for k, v in hp.items() if k not in _OURS}
    for key in _SCHEDULED:
        if key in kwargs:
            kwargs[key] = _sb3_schedule(kwargs[key], key)
    if isinstance(kwargs.get("train_freq"), list):  # YAML has no tuples: [1, episode] -> (1, "episode")
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if hp.get("noise_type") is not None:  # the zoo's noise_type/noise_std -> an SB3 action-noise object
        import numpy as np
        from stable_baselines3.common.noise import NormalActionNoise

        if hp["noise_type"] != "normal":
            raise UserError(f"baseline noise_type {hp['noise_type']!r} is not supported here; use normal")
        dim = envs.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), float(hp.get("noise_std", 0.1)) * np.ones(dim))
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}) or {})
    if hp.get("features_extractor") == "cnn":  # rlsuite's CNN trunk inside SB3 (MinAtar's 10x10 frames)
        policy_kwargs["features_extractor_class"] = cnn_extractor_class()
        policy_kwargs["features_extractor_kwargs"] = {"features_dim": int(hp.get("features_dim", 128))}
    elif hp.get("features_extractor") is not None:
        raise UserError(f"baseline features_extractor {hp['features_extractor']!r} is unknown; use cnn")
    if "share_features_extractor" in hp:
        policy_kwargs["share_features_extractor"] = bool(hp["share_features_extractor"])
    if "net_arch" in hp:
        policy_kwargs["net_arch"] = hp["net_arch"]
    if "activation_fn" in hp:
        policy_kwargs["activation_fn"] = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU,
                                          "gelu": torch.nn.GELU}[hp["activation_fn"]]
    cls = getattr(sb3, SB3_ALGORITHMS[agent])
    try:
        return cls(hp.get("policy", "MlpPolicy"), envs, seed=seed, device=device, verbose=0,
                   policy_kwargs=policy_kwargs or None, **kwargs)
    except TypeError as e:
        raise UserError(f"the card's baseline hyperparameters do not fit SB3 {cls.__name__}: {e}") from None


def cnn_extractor_class():
    """An SB3 features extractor that is rlsuite's shared CNN trunk (nets.CNN, layout read from the
    observation), so that both implementations run the same network on MinAtar's 10x10 frames, which
    SB3's NatureCNN (8x8 stride-4 first layer) cannot take."""
    import numpy as np
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from rlsuite.nets import CNN

    class RlsuiteCNN(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 128):
            super().__init__(observation_space, features_dim)
            scale = 1 / 255 if observation_space.dtype == np.uint8 else 1.0
            self.cnn = CNN(observation_space.shape, hidden=features_dim, scale=scale)

        def forward(self, observations):
            return self.cnn(observations)

    return RlsuiteCNN


def sb3_policy(model):
    """The deterministic SB3 policy as an `act(obs_batch) -> actions` for rlsuite's evaluate()."""
    norm = model.get_vec_normalize_env()  # under VecTransposeImage too

    def act(obs):
        if norm is not None:
            obs = norm.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    return act


def train_baseline(agent: str, env_id: str, seed: int = 0, steps: int | None = None, out: str | Path = "results",
                   device: str = "auto", progress: bool = True, name: str | None = None,
                   stop_at: int | None = None, lock=None, overrides: dict | None = None) -> dict:
    """SB3 with the card's baseline values; `overrides` (SB3 names) change some, e.g. for a short timing run."""
    from rlsuite.agents import get_agent
    from rlsuite.runs import check_seed

    check_seed(seed)
    resolve_env_id(env_id)
    hp, source = baseline_hyperparameters(agent, env_id)
    if overrides:
        hp.update(overrides)
        source += f", with {overrides}"
    card = load_env_card(env_id)
    probe = make_env(card)
    try:  # the same space checks as rlsuite's agent: SB3 would fail with an assertion deep inside
        get_agent(agent).check_spaces(probe.observation_space, probe.action_space)
    finally:
        probe.close()
    config = apply(BaselineConfig(), card.eval_settings, f"env card {env_id}")
    run_settings = {k: hp.pop(k) for k in list(hp) if k in {f.name for f in dataclasses.fields(BaselineConfig)}}
    config = apply(config, run_settings, "overrides")  # evaluation and checkpoint settings, as rlsuite's
    total = steps if steps is not None else hp.get("n_timesteps", card.budget_for(agent) or config.total_steps)
    if total <= 0:
        raise UserError(f"--steps must be a positive number of environment steps, got {total}")
    config = dataclasses.replace(config, total_steps=int(total))
    if config.video_every:  # filming must work before a run that films starts
        from rlsuite.video import check_can_record

        check_can_record(card)
    dev = resolve_device(device)
    n_envs = int(hp.get("n_envs", 1))
    model = make_model(agent, env_id, hp, seed, dev, n_envs)
    run_dir = new_run_dir(Path(out), f"sb3-{agent}", env_id, seed, name, exist_ok=lock is not None)
    extra = {"baseline": {"algorithm": f"stable_baselines3.{SB3_ALGORITHMS[agent]}", "hyperparameters": hp,
                          "source": source}}

    with Run(run_dir, agent, config, card, seed, dev, implementation="sb3", progress=progress,
             stop_at=stop_at, extra=extra, lock=lock) as run:
        return _learn(model, run)


def resume_baseline(run_dir: str | Path, progress: bool = True, stop_at: int | None = None, device: str | None = None,
                    lock=None, on_eval=None) -> dict:
    """Continue an interrupted SB3 baseline run from its checkpoint (see sb3_resume for what differs from an
    uninterrupted run). Its config.yaml has the hyperparameters it was started with. A run stopped at its
    budget (killed during the final evaluation) only finishes."""
    from rlsuite.rundir import RunLock
    from rlsuite.runs import load_run
    from rlsuite.sb3_resume import cut_episodes, restore_training_state

    run_dir = Path(run_dir)
    _, config, card, data = load_run(run_dir)
    hp = dict((data.get("baseline") or {}).get("hyperparameters") or {})
    dev = resolve_device(device or data.get("device", "auto"))
    lock = lock if lock is not None and lock.held else RunLock(run_dir).acquire()
    try:
        if (run_dir / "summary.json").exists():
            raise UserError(f"{run_dir} is already complete (summary.json exists); an SB3 baseline cannot be trained "
                            "beyond its budget, start a new one with the larger --steps")
        if not resumable_baseline(run_dir):  # told before the Run opens: opening would rewrite its files
            raise UserError(f"{run_dir}/checkpoints/last.pt holds only the SB3 policy (written before SB3 runs could "
                            "resume, or a run with dict observations); train this baseline again")
        with Run(run_dir, data["agent"], config, card, data["seed"], dev, implementation="sb3", resume=True,
                 progress=progress, stop_at=stop_at, lock=lock, on_eval=on_eval) as run:
            state, step = run.restored["state"], run.restored["step"]
            if step >= config.total_steps:  # trained to the budget: what is left is the final evaluation
                run.start_clock()
                return run.finish(step, load_sb3_policy(data, card, state, dev), state)
            model = make_model(data["agent"], card, hp, data["seed"], dev, int(hp.get("n_envs", 1)))
            restore_training_state(model, state)
            refill_until = 0
            if "buffer" in state:
                cut_episodes(model)
            elif hasattr(model, "replay_buffer"):  # a checkpoint without it (save_buffer: false): as rlsuite's DQN,
                refill_until = step + max(int(model.learning_starts), int(model.batch_size))  # act, refill, then learn
            run.restored["state"] = {}  # the buffer now lives in SB3's arrays; do not hold it twice
            model.get_env().seed(data["seed"] + step)  # fresh episodes, not a replay of the first ones
            return _learn(model, run, refill_until)
    finally:
        lock.release()


def resumable_baseline(run_dir: Path) -> bool:
    """Whether an interrupted SB3 run can continue: its checkpoint has the training state (those written
    before SB3 runs could resume have not), or it reached its budget. Memory-mapped: the buffer is not read."""
    import torch

    try:
        ckpt = torch.load(Path(run_dir) / "checkpoints" / "last.pt", map_location="cpu", weights_only=True, mmap=True)
        total = read_run_config(Path(run_dir))["config"]["total_steps"]
        return "training" in ckpt.get("state", {}) or int(ckpt.get("step", 0)) >= int(total)
    except Exception:  # unreadable or foreign: trained again, as before
        return False


def _learn(model, run: Run, refill_until: int = 0) -> dict:
    """SB3's learn() up to the run's budget (from where a resumed model stands), reporting through the
    rlsuite Run: episodes, evaluations, progress, checkpoints with the training state, stops. Before step
    `refill_until` an off-policy model acts with its policy but takes no gradient step (its replay buffer
    was not checkpointed and is being refilled).

    Checkpoints and stops happen at rollout boundaries (SB3's on_rollout_start and the first step after
    it, whose transition is not stored yet), where buffer, counters and weights agree: a resume then
    loses no collected data and no gradient step. A stop can wait up to one rollout (n_steps x n_envs
    steps for PPO/A2C, train_freq for DQN/SAC/TD3)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from rlsuite.sb3_resume import can_resume, training_state

    total = run.config.total_steps
    save_buffer = getattr(run.config, "save_buffer", True)
    gradient_steps = getattr(model, "gradient_steps", None)

    def state() -> dict:
        extra = training_state(model, save_buffer) if can_resume(model) else {}
        return {**sb3_state(model), **extra}

    class ForwardToRun(BaseCallback):
        """Hands SB3's finished episodes and step counter to the rlsuite Run."""

        def __init__(self, act):
            super().__init__()
            self.act, self.boundary, self.stopped = act, False, False

        def _on_training_start(self) -> None:
            run.start_clock()

        def _on_rollout_start(self) -> None:
            self.boundary = True
            step = int(model.num_timesteps)
            if refill_until:  # SB3 trains after each chunk by gradient_steps: none until the buffer is refilled
                model.gradient_steps = 0 if step < refill_until else gradient_steps
            if step < total and run.checkpoint_due(step):
                run.save_checkpoint(step, state())

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if self.boundary and run.should_stop(step - model.n_envs):
                # The first step of a rollout: its transition is not stored, nothing trained on it. Stop as of
                # the boundary (the step is undone below); the resume starts fresh episodes.
                self.stopped = True
                return False
            self.boundary = False
            for info in self.locals.get("infos", []):
                if "episode" in info:  # SB3's Monitor wrapper: raw episode return and length
                    run.log_episode(step, float(info["episode"]["r"]), int(info["episode"]["l"]))
            run.maybe_evaluate(step, self.act)
            run.progress(step)
            return True

    act = sb3_policy(model)
    callback = ForwardToRun(act)
    done = int(model.num_timesteps)
    model.learn(total_timesteps=total - done, callback=callback, reset_num_timesteps=done == 0)
    if callback.stopped:
        model.num_timesteps -= model.n_envs
    if refill_until:
        model.gradient_steps = gradient_steps  # a checkpoint taken now records the card's value
    step = int(model.num_timesteps)
    # A run that stops early keeps what it needs to go on; a finished one only what evaluation needs.
    return run.finish(step, act, sb3_state(model) if step >= total else state())


def sb3_state(model) -> dict:
    """What re-evaluating an SB3 run needs, as plain tensors (loadable with weights_only=True): the
    policy's weights and, under VecNormalize, the observation statistics the policy was trained on."""
    import torch

    state = {"policy": model.policy.state_dict()}
    env = model.get_vec_normalize_env()  # under VecTransposeImage too
    if env is not None and env.norm_obs:
        rms = env.obs_rms
        state["obs_norm"] = {"mean": torch.as_tensor(rms.mean), "var": torch.as_tensor(rms.var),
                             "count": float(rms.count), "clip": float(env.clip_obs), "epsilon": float(env.epsilon)}
    return state


def load_sb3_policy(data: dict, card, state: dict, device):
    """The deterministic policy of an SB3 baseline run directory, rebuilt from its config.yaml (the zoo
    hyperparameters it ran with) and its checkpoint (weights + normalisation statistics)."""
    import numpy as np

    hp = dict((data.get("baseline") or {}).get("hyperparameters") or {})
    hp.pop("normalize", None)  # the saved statistics replace a fresh VecNormalize
    model = make_model(data["agent"], card, hp, data["seed"], device, int(hp.get("n_envs", 1)))
    model.policy.load_state_dict(state["policy"])
    norm = state.get("obs_norm")
    if norm is not None:
        mean, var = norm["mean"].numpy(), norm["var"].numpy()
        scale = np.sqrt(var + norm["epsilon"])

    def act(obs):
        if norm is not None:
            obs = np.clip((obs - mean) / scale, -norm["clip"], norm["clip"]).astype(np.float32)
        return model.predict(obs, deterministic=True)[0]

    return act


def differences_from_zoo(agent: str, env_id: str) -> dict:
    """{field: (rlsuite card, zoo)} where rlsuite's resolved card differs from SB3's zoo values expressed as
    rlsuite settings (the budget aside): empty means the two run the same hyperparameters."""
    from rlsuite.cards import to_data
    from rlsuite.runs import prepare

    zoo, _ = baseline_hyperparameters(agent, env_id)
    if agent == "dqn":
        as_ours = dqn_overrides_from_sb3(zoo)
    elif agent in SB3_OFFPOLICY_DEFAULTS:
        as_ours = offpolicy_overrides_from_sb3(agent, zoo, env_id)
    else:
        as_ours = pg_overrides_from_sb3(agent, zoo)
    as_ours.pop("total_steps", None)
    card = to_data(prepare(agent, env_id)[1])
    same_as_zoo = to_data(prepare(agent, env_id, overrides=as_ours)[1])
    return {k: (card[k], same_as_zoo[k]) for k in card if k != "total_steps" and card[k] != same_as_zoo[k]}
