"""SB3 runs under rlsuite's protocol: SB3's DQN / A2C / PPO / SAC / TD3 train with the zoo's values
(rlsuite.sb3.hyperparameters) and report through a callback that forwards episodes to the same `Run` the
rlsuite agents use: same run directory, metrics.csv columns, TensorBoard tags, evaluation function, seeds
and summary.json. Only the learning algorithm differs.

stable_baselines3 is imported inside the functions that need it: it is a heavy import that the commands
which never train SB3 should not pay for.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import torch

from rlsuite.config.cards import budget, env_card_from_data, load_env_card
from rlsuite.config.schema import EnvCard, apply, check_seed, check_steps
from rlsuite.core.errors import UserError
from rlsuite.envs.make import make_env, resolve_env_id
from rlsuite.envs.video import check_can_record
from rlsuite.learn.nets import CNN
from rlsuite.registry import get_agent
from rlsuite.run.engine import Run, resolve_device
from rlsuite.run.rundir import RunLock, new_run_dir, read_run_config
from rlsuite.sb3.hyperparameters import (
    _OURS,
    _SCHEDULED,
    SB3_ALGORITHMS,
    BaselineConfig,
    _sb3_schedule,
    baseline_hyperparameters,
)
from rlsuite.run.tracking import check_tracker
from rlsuite.sb3.training_state import can_resume, cut_episodes, restore_training_state, training_state


def load_baseline_run(run_dir: Path) -> tuple[BaselineConfig, EnvCard, dict]:
    """(config, env card, config.yaml data) of an SB3 run directory."""
    data = read_run_config(run_dir)
    config = apply(BaselineConfig(), data["config"], f"{run_dir}/config.yaml [config]")
    card = env_card_from_data(data.get("env_card"), f"{run_dir}/config.yaml")
    return config, card, data


def make_model(agent: str, card: EnvCard | str, hp: dict, seed: int, device, n_envs: int,
               library: str = "stable_baselines3"):
    """The SB3 model for `hp` on the env card (or the id of one). library: the module whose classes are used, SB3
    or a port with SB3's constructors (`sbx`, SB3 in JAX, in the peers benchmark)."""
    sb3 = importlib.import_module(library)  # heavy; loaded only for SB3 runs
    from stable_baselines3.common.env_util import make_vec_env  # heavy; loaded only for SB3 runs

    card = load_env_card(card) if isinstance(card, str) else card
    envs = make_vec_env(lambda: make_env(card), n_envs=n_envs, seed=seed)
    if hp.get("normalize"):
        from stable_baselines3.common.vec_env import VecNormalize  # heavy; loaded only for SB3 runs

        envs = VecNormalize(envs, gamma=hp.get("gamma", 0.99))
    kwargs = {k: v for k, v in hp.items() if k not in _OURS}
    for key in _SCHEDULED:
        if key in kwargs:
            kwargs[key] = _sb3_schedule(kwargs[key], key)
    if isinstance(kwargs.get("train_freq"), list):  # YAML has no tuples: [1, episode] -> (1, "episode")
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if hp.get("noise_type") is not None:  # the zoo's noise_type/noise_std -> an SB3 action-noise object
        from stable_baselines3.common.noise import NormalActionNoise  # heavy; loaded only for SB3 runs

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
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor  # heavy; loaded only for SB3 runs

    class RlsuiteCNN(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 128):
            super().__init__(observation_space, features_dim)
            scale = 1 / 255 if observation_space.dtype == np.uint8 else 1.0
            self.cnn = CNN(observation_space.shape, hidden=features_dim, scale=scale)

        def forward(self, observations):
            return self.cnn(observations)

    return RlsuiteCNN


def sb3_policy(model, deterministic: bool = True):
    """The SB3 policy (deterministic, or SB3's own sampling with eval_deterministic: false) as an
    `act(obs_batch) -> actions` for rlsuite's evaluate()."""
    norm = model.get_vec_normalize_env()  # under VecTransposeImage too

    def act(obs):
        if norm is not None:
            obs = norm.normalize_obs(obs)
        return model.predict(obs, deterministic=deterministic)[0]

    return act


def train_baseline(agent: str, env_id: str, seed: int = 0, steps: int | None = None, out: str | Path = ".",
                   device: str = "auto", progress: bool = True, name: str | None = None,
                   stop_at: int | None = None, lock=None, overrides: dict | None = None) -> dict:
    """SB3 with the card's baseline values; `overrides` (SB3 names) change some, e.g. for a short timing run."""
    check_seed(seed)
    check_tracker()
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
    if steps is None and "n_timesteps" in (overrides or {}):  # compare --set total_steps=N: both sides
        steps = int(overrides["n_timesteps"])
    total = check_steps(steps) if steps is not None else budget(agent, get_agent(agent).config_cls, env_id)
    config = dataclasses.replace(config, total_steps=int(total))  # the same budget rlsuite's agent gets
    hp["n_timesteps"] = int(total)  # config.yaml records the budget the run trained, not the zoo's
    if config.video_every:  # filming must work before a run that films starts
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
    """Continue an interrupted SB3 baseline run from its checkpoint (see rlsuite.sb3.training_state for what differs from an
    uninterrupted run). Its config.yaml has the hyperparameters it was started with. A run stopped at its
    budget (killed during the final evaluation) only finishes."""
    run_dir = Path(run_dir)
    config, card, data = load_baseline_run(run_dir)
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
                return run.finish(step, load_sb3_policy(data, card, state, dev, config.eval_deterministic), state)
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
    from stable_baselines3.common.callbacks import BaseCallback  # heavy; loaded only for SB3 runs

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
            self.forward_logs(step)
            if refill_until:  # SB3 trains after each chunk by gradient_steps: none until the buffer is refilled
                model.gradient_steps = 0 if step < refill_until else gradient_steps
            if step < total and run.checkpoint_due(step):
                run.save_checkpoint(step, state())

        def forward_logs(self, step: int) -> None:
            """SB3's training values (train/loss, train/value_loss, ...) and the steps per second, through the
            run's own TensorBoard writer, under rlsuite's tags (losses/..., charts/...)."""
            values = getattr(model.logger, "name_to_value", {}) if step else {}
            scalars = {("charts/learning_rate" if key == "train/learning_rate" else "losses/" + key[len("train/"):]): v
                       for key, v in values.items() if key.startswith("train/") and isinstance(v, (int, float))}
            if step and run.wall() > 0:
                scalars["charts/SPS"] = step / run.wall()
            if scalars:
                run.log_scalars(step, scalars)

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

    act = sb3_policy(model, run.config.eval_deterministic)
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
    state = {"policy": model.policy.state_dict()}
    env = model.get_vec_normalize_env()  # under VecTransposeImage too
    if env is not None and env.norm_obs:
        rms = env.obs_rms
        state["obs_norm"] = {"mean": torch.as_tensor(rms.mean), "var": torch.as_tensor(rms.var),
                             "count": float(rms.count), "clip": float(env.clip_obs), "epsilon": float(env.epsilon)}
    return state


def load_sb3_policy(data: dict, card, state: dict, device, deterministic: bool = True):
    """The (deterministic, or SB3-sampled) policy of an SB3 baseline run directory, rebuilt from its config.yaml (the zoo
    hyperparameters it ran with) and its checkpoint (weights + normalisation statistics)."""
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
        return model.predict(obs, deterministic=deterministic)[0]

    return act
