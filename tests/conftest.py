import csv
import os
from pathlib import Path

import pytest
import torch

# Small networks on a busy 2-core machine: one thread is fastest and keeps runs deterministic.
torch.set_num_threads(1)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# A tiny DQN budget for CLI/engine tests: seconds, not minutes.
TINY_DQN = {"learning_starts": "200", "eval_every": "300", "eval_episodes": "2", "final_eval_episodes": "3",
            "hidden": "16,16", "buffer_size": "2000", "train_freq": "4", "gradient_steps": "1",
            "checkpoint_every": "400", "log_every": "100"}


def metrics_without_wall(run_dir):
    """A run's metrics.csv rows without the wall-clock column: what two runs of one seed must share exactly."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def assert_one_line_error(result, *fragments):
    """A CLI result that failed the way bad input must: non-zero exit, one line, no traceback."""
    assert result.exit_code != 0
    out = result.output.strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    for fragment in fragments:
        assert fragment in out, out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 600-step DQN run on CartPole-v1."""
    from rlsuite import runs

    out = tmp_path_factory.mktemp("tiny")
    summary = runs.train("dqn", "CartPole-v1", seed=1, steps=600, overrides=dict(TINY_DQN), out=out, progress=False)
    return Path(summary["run_dir"])
