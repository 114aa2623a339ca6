"""The logged episode length and return are the env's, for every agent, through time limits and autoresets."""

import csv
from pathlib import Path

import pytest

import toy_envs  # noqa: F401 - registers the toy ids
from rlsuite import runs

TINY = {"eval_every": "400", "eval_episodes": "1", "final_eval_episodes": "1", "hidden": "8"}


@pytest.mark.parametrize("agent, env_id, extra", [
    ("dqn", "toy_envs:Triangle-v0", {"learning_starts": "50", "num_envs": "3", "buffer_size": "500"}),
    ("ppo", "toy_envs:Triangle-v0", {"n_steps": "16", "num_envs": "3", "batch_size": "16"}),
    ("a2c", "toy_envs:Triangle-v0", {"n_steps": "5", "num_envs": "3"}),
    ("reinforce", "toy_envs:Triangle-v0", {"n_steps": "16", "num_envs": "3"}),
    ("sac", "toy_envs:TriangleContinuous-v0", {"learning_starts": "50", "num_envs": "2", "batch_size": "16"}),
    ("td3", "toy_envs:TriangleContinuous-v0", {"learning_starts": "50", "num_envs": "2", "batch_size": "16"}),
])
def test_logged_returns_and_lengths_are_the_envs(tmp_path, agent, env_id, extra):
    summary = runs.train(agent, env_id, steps=400, overrides={**TINY, **extra}, out=tmp_path, progress=False)
    with open(Path(summary["run_dir"]) / "metrics.csv", newline="") as f:
        episodes = [(float(r["episode_return"]), int(float(r["episode_length"]))) for r in csv.DictReader(f)
                    if r["episode_return"]]
    lengths = [n for _, n in episodes]
    assert len(episodes) > 30 and set(lengths) <= set(range(3, 8)) and len(set(lengths)) >= 3
    assert 7 in lengths  # episodes cut by the time limit are logged at their length too
    assert all(ret == n * (n + 1) / 2 for ret, n in episodes), episodes[:10]
