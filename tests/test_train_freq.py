"""train_freq counts env steps, as its help says and as SB3 counts them for one env, with any number of envs:
with 4 envs, train_freq=1, gradient_steps=1 is 4 updates per vector step (it was 1, an update per 4 env steps).
SB3 counts train_freq in vector steps, so the zoo mapping multiplies by n_envs and `--set` divides by it."""

import pytest

from rlsuite import runs
from rlsuite.agents import dqn, sac_td3


def _count(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_dqn_does_gradient_steps_per_train_freq_env_steps_with_several_envs(tmp_path, monkeypatch):
    calls = _count(monkeypatch, dqn, "member_gradient_step")
    overrides = {"num_envs": 4, "train_freq": 1, "gradient_steps": 1, "learning_starts": 100, "hidden": "16,16",
                 "eval_every": 400, "eval_episodes": 1, "final_eval_episodes": 1, "buffer_size": 1000}
    runs.train("dqn", "CartPole-v1", steps=400, overrides=overrides, out=tmp_path, progress=False)
    # vector steps end at env steps 4, 8, ..., 400; from step 100 on each does 4 updates: 76 × 4
    assert len(calls) == 76 * 4
    calls.clear()
    runs.train("dqn", "CartPole-v1", steps=400, overrides={**overrides, "train_freq": 8, "gradient_steps": 3},
               out=tmp_path, progress=False)
    assert len(calls) == 3 * (400 // 8 - 96 // 8)  # every 8 env steps from step 100 on (multiples 104 .. 400)


def test_sac_does_gradient_steps_per_train_freq_env_steps_with_several_envs(tmp_path, monkeypatch):
    calls = _count(monkeypatch, sac_td3, "sac_update")
    overrides = {"num_envs": 4, "train_freq": 2, "gradient_steps": 1, "learning_starts": 100, "hidden": "16,16",
                 "batch_size": 16, "eval_every": 400, "eval_episodes": 1, "final_eval_episodes": 1}
    runs.train("sac", "Pendulum-v1", steps=400, overrides=overrides, out=tmp_path, progress=False)
    assert len(calls) == 75 * 2  # vector steps ending at 104 .. 400 (SB3 starts after learning_starts), 2 each


def test_the_zoo_mapping_counts_sb3s_vector_steps():
    from rlsuite.config.zoo import gradient_steps_from_zoo, train_freq_from_zoo, train_freq_to_sb3

    hp = {"train_freq": 1, "gradient_steps": -1, "n_envs": 4}
    assert train_freq_from_zoo(hp, "sac", "Pendulum-v1") == 4  # one vector step of 4 envs
    assert gradient_steps_from_zoo(hp, "sac", "Pendulum-v1") == 4  # SB3's -1: as many as env steps collected
    assert train_freq_from_zoo({"train_freq": 256, "gradient_steps": 128}, "dqn", "CartPole-v1") == 256
    assert train_freq_from_zoo({"train_freq": [1, "episode"], "n_envs": 2}, "td3", "Pendulum-v1") == 400
    assert train_freq_to_sb3(8, "sac", {"n_envs": 4}, {}) == {"train_freq": 2}
    assert train_freq_to_sb3(8, "sac", {"n_envs": 1}, {"num_envs": "2"}) == {"train_freq": 4}
    assert train_freq_to_sb3(6, "sac", {"n_envs": 4}, {}) is None  # not a whole number of SB3's vector steps


@pytest.mark.parametrize("overrides,expected,ours_only", [
    ({"train_freq": "8", "num_envs": "4"}, {"train_freq": 2, "n_envs": 4}, []),
    ({"train_freq": "6", "num_envs": "4"}, {"n_envs": 4}, ["train_freq"]),
])
def test_compare_set_train_freq_reaches_sb3_in_its_units(overrides, expected, ours_only):
    from rlsuite.sb3.hyperparameters import sb3_overrides_for

    out, only = sb3_overrides_for(overrides, "sac", {"n_envs": 1})
    assert {k: out[k] for k in expected} == expected and only == ours_only
