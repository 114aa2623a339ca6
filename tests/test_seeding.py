"""Independent seeds (docs/protocol.md, Seeding): every stream of a run derives from its seed through
SeedSequence, so runs share no env or evaluation seed; runs recorded before the scheme keep theirs."""

import json

import numpy as np
import pytest
import yaml

from conftest import TINY_DQN
from rlsuite import runs
from rlsuite.core.seeding import SEEDING, Seeds, episode_seeds
from rlsuite.run import engine


def test_runs_0_to_9_share_no_training_env_or_evaluation_seed():
    """Under version 1, runs s and s + 1 shared 19 of their 20 final-evaluation start states (s + 10000 + i)
    and all but one training sub-env seed (s + i)."""
    used = []
    for s in range(10):
        seeds = Seeds(s)
        used += seeds.train_envs(16) + seeds.train_envs(16, restart=5_000) + seeds.eval_envs(20)
    assert len(used) == len(set(used)) == 10 * (16 + 16 + 20)
    legacy = [x for s in range(10) for x in Seeds(s, 1).eval_envs(20)]
    assert len(set(legacy)) == 29  # what version 1 gave: 200 episodes on 29 start states


def test_seeds_are_spawned_children_of_the_run_seed():
    """By hand: evaluation episode i of run s is the first 32-bit word of SeedSequence(s, spawn_key=(1, i))."""
    s = 7
    want = [int(np.random.SeedSequence(s, spawn_key=(1, i)).generate_state(1)[0]) for i in range(3)]
    assert Seeds(s).eval_envs(3) == want
    assert Seeds(s).train_envs(2) == [int(np.random.SeedSequence(s, spawn_key=(0, 0, i)).generate_state(1)[0])
                                      for i in range(2)]
    assert Seeds(s).eval_envs(3) == Seeds(s).eval_envs(3)  # the same at every evaluation
    assert Seeds(s).torch_seed(2) != Seeds(s).torch_seed(3) != Seeds(s + 1).torch_seed(3)
    a, b = Seeds(s).numpy(3).random(4), Seeds(s + 1).numpy(3).random(4)
    assert not np.allclose(a, b) and np.allclose(a, Seeds(s).numpy(3).random(4))


def test_version_1_is_the_old_formulas():
    seeds = Seeds(3, 1)
    assert seeds.train_envs(2) == [3, 4] and seeds.train_envs(2, restart=100) == [103, 104]
    assert seeds.eval_envs(2) == [10_003, 10_004]
    assert seeds.torch_seed(2) == 3 and seeds.python_seed() == 3
    assert episode_seeds(5, 3) == [5, 6, 7] and episode_seeds([9, 1, 4], 2) == [9, 1]
    with pytest.raises(ValueError):
        Seeds(3, 7)


def test_a_run_records_its_seeding_and_evaluates_on_its_own_seeds(tmp_path, monkeypatch):
    seen = []
    real = engine.evaluate_episodes

    def spy(act, card, episodes, seed, *args):
        seen.append(list(seed))
        return real(act, card, episodes, seed, *args)

    monkeypatch.setattr(engine, "evaluate_episodes", spy)
    summary = runs.train("dqn", "CartPole-v1", seed=4, steps=600, overrides=TINY_DQN, out=tmp_path, progress=False)
    config = yaml.safe_load((tmp_path / "runs" / summary["run_dir"].split("/")[-1] / "config.yaml").read_text())
    assert config["seeding"] == SEEDING
    assert seen[0] == Seeds(4).eval_envs(2) and seen[-1] == Seeds(4).eval_envs(3)  # periodic, then final
    result = runs.evaluate_run(summary["run_dir"], episodes=3)
    assert result["seeds"] == Seeds(4).eval_envs(3) and result["mean"] == summary["final_eval"]["mean"]


def test_a_run_recorded_before_the_scheme_keeps_version_1(tmp_path):
    """A config.yaml without `seeding` is version 1: eval re-plays the episodes its own evaluation played."""
    summary = runs.train("dqn", "CartPole-v1", seed=4, steps=600, overrides=TINY_DQN, out=tmp_path, progress=False)
    path = tmp_path / "runs" / summary["run_dir"].split("/")[-1] / "config.yaml"
    data = yaml.safe_load(path.read_text())
    del data["seeding"]
    path.write_text(yaml.safe_dump(data))
    result = runs.evaluate_run(summary["run_dir"], episodes=3)
    assert result["seeds"] == [10_004, 10_005, 10_006]
    data["seeding"] = 9
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(Exception, match="seeding 9 is unknown"):
        runs.evaluate_run(summary["run_dir"], episodes=3)


def test_a_benchmark_never_reuses_a_run_of_the_other_scheme(tmp_path):
    stamp = runs.fingerprint("dqn", "CartPole-v1", 600, TINY_DQN)
    assert stamp["seeding"] == SEEDING
    old = {k: v for k, v in stamp.items() if k != "seeding"}  # a stamp written before the scheme
    assert runs._experiment(old) != runs._experiment(stamp)
    assert runs._experiment({**old, "seeding": SEEDING}) == runs._experiment(stamp)


def test_a_population_member_draws_what_a_single_run_with_its_seed_draws(tmp_path, monkeypatch):
    from rlsuite.run.population import Population

    class Member:
        def __init__(self, seed):
            self.seeds = Seeds(seed)

    population = Population.__new__(Population)
    population.runs = [Member(2), Member(5)]
    assert population.env_seeds(3) == Seeds(2).train_envs(3) + Seeds(5).train_envs(3)
    assert population.env_seeds(3, restart=800) == Seeds(2).train_envs(3, 800) + Seeds(5).train_envs(3, 800)


def test_a_stamp_written_before_a_field_existed_names_the_same_experiment():
    """A benchmark's own record (populations' process.json) compares stamps read back from JSON: one written before
    eval_deterministic existed lacks the field, at its default now, and is the same experiment (a strict == made
    the populations report print a process CPU of 0 for every population trained before the field was added)."""
    stamp = runs.fingerprint("dqn", "CartPole-v1", 600, TINY_DQN)
    old = json.loads(json.dumps(stamp, default=str))
    del old["config"]["eval_deterministic"]
    assert old != json.loads(json.dumps(stamp, default=str))
    assert runs.same_experiment(old, stamp)
    changed = runs.fingerprint("dqn", "CartPole-v1", 600, {**TINY_DQN, "eval_deterministic": False})
    assert not runs.same_experiment(old, changed)
    assert not runs.same_experiment(old, runs.fingerprint("dqn", "CartPole-v1", 800, TINY_DQN))
