"""`rlsuite tune` end to end on tiny studies: card entry and report written, resume continues the same
study, a failing trial does not stop it, an interrupted trial is retried and its runs resume, pruning
stops a run mid-way, bad input ends in one line; local worker processes and a local Ray share one study."""

import importlib.util
import json
import os

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from rlsuite import runs
from rlsuite.agents.dqn import DQNConfig
from rlsuite.config.schema import apply
from rlsuite.cli import main
from rlsuite.tune.study import load_settings, open_study
from tests.conftest import TINY_DQN, assert_one_line_error

# Every trial: 2 seeds × 900 steps of a 16x16 DQN, evaluated every 300 steps (seconds per trial).
FIXED = [x for k, v in TINY_DQN.items() if k not in ("eval_every",) for x in ("--set", f"{k}={v}")]
FIXED += ["--set", "eval_every=300"]
SPACE = "lr: {loguniform: [1.0e-4, 1.0e-2]}\ngamma: {categorical: [0.9, 0.99]}\n"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tune_args(tmp_path, trials, *extra, seeds=2, workers=1):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return ["tune", "dqn", "CartPole-v1", "--trials", trials, "--seeds", seeds, "--steps", 900, "--workers", workers,
            "--space", space, "--out", tmp_path, "--no-reference", *FIXED, *extra]


def study_of(tune_dir):
    settings = load_settings(tune_dir)
    return settings, open_study(settings).get_trials(deepcopy=False)


def test_tiny_study_end_to_end_resume_and_a_failing_trial(tmp_path, monkeypatch):
    real_train = runs.train_members
    calls = []

    def train_failing_once(*args, **kwargs):  # the study's first trial (its seeds, one population) crashes
        calls.append(args[3])
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runs, "train_members", train_failing_once)
    result = invoke(*tune_args(tmp_path, 3))
    assert result.exit_code == 0, result.output
    tune_dir = tmp_path / "tune" / "dqn-CartPole-v1"
    settings, trials = study_of(tune_dir)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "boom" in trials[0].user_attrs["error"]
    assert settings.seeds == [0, 1] and settings.steps == 900 and settings.fixed["hidden"] == [16, 16]
    assert settings.floor == pytest.approx(settings.floor) and settings.floor < 50  # a random policy on CartPole
    # every complete trial trained one ordinary run per seed, scored by the objective
    for t in trials[1:]:
        assert len(t.user_attrs["runs"]) == 2 and len(t.user_attrs["finals"]) == 2
        assert -0.5 <= t.value <= 1.0
        for run_dir in t.user_attrs["runs"]:
            assert json.loads((tune_dir / "runs" / os.path.basename(run_dir) / "summary.json").read_text())["steps"] == 900
    best = max(trials[1:], key=lambda t: t.value)
    # the card entry: the card's CartPole entry with the fixed fields and the best values, ready to apply
    entry = yaml.safe_load((tune_dir / "best.yaml").read_text())["CartPole-v1"]
    assert entry["lr"] == best.params["lr"] and entry["gamma"] == best.params["gamma"] and entry["hidden"] == [16, 16]
    assert "total_steps" not in entry and apply(DQNConfig(), entry, "best.yaml").lr.start == best.params["lr"]  # the budget stays the card's
    assert f"trial {best.number}" in result.output and "CartPole-v1:" in result.output
    report = (tune_dir / "report.md").read_text()
    assert "| 0 | fail |" in report and "boom" in report and "history.png" in report
    for name in ("history.png", "importances.png"):
        assert (tune_dir / name).stat().st_size > 1000
    assert len(list((tune_dir / "tensorboard").iterdir())) == 2  # one HParams entry per complete trial

    # the same command with more trials continues the same study; the finished trials stay
    result = invoke(*tune_args(tmp_path, 4))
    assert result.exit_code == 0, result.output
    assert "continuing the study" in result.output
    _, trials = study_of(tune_dir)
    assert len(trials) == 4 and trials[3].state == TrialState.COMPLETE
    # other settings on the same folder: one line, nothing touched
    assert_one_line_error(invoke(*tune_args(tmp_path, 4)[:6], 3, *tune_args(tmp_path, 4)[7:]), "other settings", "seeds")
    # `tune show` regenerates the report and prints the card entry
    result = invoke("tune", "show", tune_dir)
    assert result.exit_code == 0 and "CartPole-v1:" in result.output and "] 4 trials: 3 complete, 0 pruned, 1 failed" in result.output


def test_the_cost_term_ranks_recipes_by_their_gradient_steps(tmp_path):
    # a trial's value is its quality (the objective without cost) minus 0.05 × log2(cost / the card's cost):
    # train_freq 16 does 1/16 gradient steps per env step, train_freq 1 one, 16× as many
    space = tmp_path / "space.yaml"
    space.write_text("train_freq: {categorical: [1, 16]}\n")
    fixed = [a for pair in zip(FIXED[::2], FIXED[1::2]) if pair[1] != "train_freq=4" for a in pair]
    args = ["tune", "dqn", "CartPole-v1", "--trials", 2, "--seeds", 1, "--steps", 900, "--workers", 1, "--space", space,
            "--out", tmp_path, "--no-reference", *fixed]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "minus 0.05 × log2(cost / " in result.output and "cost = gradient steps per env step" in result.output
    settings, trials = study_of(tmp_path / "tune" / "dqn-CartPole-v1")
    card = runs.prepare("dqn", "CartPole-v1", 900, settings.fixed)[1]
    assert settings.cost == "updates" and settings.cost_reference == card.gradient_steps_per_env_step()
    assert {t.params["train_freq"] for t in trials} == {1, 16}
    for t in trials:
        cost = 1 / t.params["train_freq"]
        assert t.user_attrs["cost"] == pytest.approx(cost)
        assert t.value == pytest.approx(t.user_attrs["quality"] - 0.05 * np.log2(cost / settings.cost_reference))
    assert "| cost |" in (tmp_path / "tune" / "dqn-CartPole-v1" / "report.md").read_text()
    # continuing without --cost keeps the study's; another cost term is another study
    assert invoke(*args[:4], 3, *args[5:]).exit_code == 0
    assert_one_line_error(invoke(*args, "--cost", "none"), "other settings", "cost")
    assert_one_line_error(invoke(*args, "--cost-weight", "-1"), "--cost-weight must be in [0, 10]")
    assert_one_line_error(invoke(*args, "--cost", "wall"), "wall")
    # --cost none: the value is the quality alone
    result = invoke(*args, "--cost", "none", "--name", "plain")
    assert result.exit_code == 0, result.output
    _, trials = study_of(tmp_path / "tune" / "plain")
    assert all(t.value == t.user_attrs["quality"] and "cost" not in t.user_attrs for t in trials)


def test_an_interrupted_trial_is_retried_and_its_run_resumes(tmp_path, monkeypatch):
    from rlsuite.run import engine

    original = engine.Run.maybe_evaluate
    fired = []

    def ctrl_c_at_first_evaluation(self, step, act):  # as if Ctrl-C arrived mid-run
        original(self, step, act)
        if not fired and step >= 300:
            fired.append(self.dir)
            self.stop_signal = "SIGINT"

    monkeypatch.setattr(engine.Run, "maybe_evaluate", ctrl_c_at_first_evaluation)
    result = invoke(*tune_args(tmp_path, 2))
    assert result.exit_code == 130, result.output
    assert "re-run the same command to resume" in result.output
    tune_dir = tmp_path / "tune" / "dqn-CartPole-v1"
    _, trials = study_of(tune_dir)
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["interrupted"] == "SIGINT"
    run_dir = fired[0]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"

    result = invoke(*tune_args(tmp_path, 2))
    assert result.exit_code == 0, result.output
    assert "queued again" in result.output
    _, trials = study_of(tune_dir)
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.state == TrialState.COMPLETE and retry.params == trials[0].params
    assert str(run_dir) in retry.user_attrs["runs"]  # the same run directory, resumed, not retrained
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 900
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2  # the interrupted one does not count


def test_pruning_stops_the_run_at_an_evaluation(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 1)
    result = invoke(*tune_args(tmp_path, 2))
    assert result.exit_code == 0, result.output
    tune_dir = tmp_path / "tune" / "dqn-CartPole-v1"
    _, trials = study_of(tune_dir)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert list(trials[1].intermediate_values) == [300]  # reported at its first evaluation, then stopped
    run_dir = tune_dir / "runs" / os.path.basename(trials[1].user_attrs["runs"][0])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["reason"] == "pruned" and status["step"] < 900
    assert "pruned at seed 0 step 300" in (tune_dir / "report.md").read_text()


@pytest.mark.parametrize("args, fragments", [
    (["--trials", 0], ["--trials must be in"]),
    (["--pruner", "bogus"], ["unknown pruner"]),
    (["--search", "lr"], ["--search", "FIELD=DISTRIBUTION"]),
    (["--search", "lrr={loguniform: [1e-4, 1e-2]}"], ["lrr", "unknown field"]),
    (["--search", "lr={loguniform: [0, 1e-2]}"], ["log scale needs low > 0"]),
    (["--search", "lr={uniform: [1e-2, 1e-4]}"], ["low < high"]),
    (["--search", "double={uniform: [0, 1]}"], ["not a number field"]),
    (["--address", "auto"], ["--address is for --backend ray"]),
    (["--backend", "spark"], ["unknown backend"]),
    (["--storage", "mysql+nodriver://x/y"], ["cannot open the study storage"]),
])
def test_bad_tune_input_is_one_line(tmp_path, args, fragments):
    assert_one_line_error(invoke(*tune_args(tmp_path, 2, *args)), *fragments)


def test_bad_tune_targets_are_one_line(tmp_path):
    assert_one_line_error(invoke("tune", "dqnn", "CartPole-v1", "--out", tmp_path), "dqnn")
    assert_one_line_error(invoke("tune", "show", tmp_path / "nope"), "not a tune directory")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "tune.json").write_text("{not json")
    assert_one_line_error(invoke("tune", "show", tmp_path / "damaged"), "damaged")
    space = tmp_path / "s.yaml"
    space.write_text("lr: 3\n")
    assert_one_line_error(invoke("tune", "dqn", "CartPole-v1", "--space", space, "--out", tmp_path), "one distribution")
    # every field fixed: nothing left to search
    space.write_text("lr: {loguniform: [1e-4, 1e-2]}\n")
    assert_one_line_error(invoke("tune", "dqn", "CartPole-v1", "--space", space, "--set", "lr=1e-3", "--out", tmp_path),
                          "nothing to tune")


def test_every_card_space_parses():
    from rlsuite.registry import get_agent
    from rlsuite.config.cards import load_agent_card
    from rlsuite.tune.space import parse_space

    for agent in ("dqn", "ppo", "a2c", "reinforce", "sac", "td3"):
        assert parse_space(load_agent_card(agent)["tune"], get_agent(agent).config_cls, agent)


def two_worker_study(tmp_path, *extra):
    result = invoke(*tune_args(tmp_path, 2, *extra, seeds=1, workers=2))
    assert result.exit_code == 0, result.output
    _, trials = study_of(tmp_path / "tune" / "dqn-CartPole-v1")
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 2
    return trials


def test_two_local_worker_processes_share_one_study(tmp_path):
    trials = two_worker_study(tmp_path)
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert os.getpid() not in pids  # trained in the worker processes
    assert not any(t.user_attrs["worker"]["ray"] for t in trials)


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None and os.environ.get("CI") != "true",
                    reason="needs the [ray] extra (CI installs it, so there this test always runs)")
def test_tune_on_a_local_ray(tmp_path):
    trials = two_worker_study(tmp_path, "--backend", "ray")
    workers = [t.user_attrs["worker"] for t in trials]
    assert all(w["ray"] for w in workers) and os.getpid() not in {w["pid"] for w in workers}  # Ray's workers ran them


def test_a_trial_left_running_by_a_killed_worker_is_queued_again(tmp_path):
    """kill -9 leaves a RUNNING trial behind: the next start marks it interrupted and retries its values once."""
    import socket
    import subprocess
    import sys

    from rlsuite.tune.study import recover

    result = invoke(*tune_args(tmp_path, 1))
    assert result.exit_code == 0, result.output
    settings, _ = study_of(tmp_path / "tune" / "dqn-CartPole-v1")
    study = open_study(settings)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("gamma", [0.9, 0.99])
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    alive = study.ask()  # a trial of a live worker (this process) is left alone
    alive.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    assert recover(study, study._storage) == 1
    assert recover(study, study._storage) == 0  # retried once, not again
    trials = study.get_trials(deepcopy=False)
    assert trials[trial.number].state == TrialState.FAIL and trials[trial.number].user_attrs["interrupted"]
    assert trials[alive.number].state == TrialState.RUNNING
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == trial.number
    assert waiting[0].system_attrs["fixed_params"] == trials[trial.number].params  # the same values


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A finished 2-trial study (1 seed per trial) that tests copy before they damage it."""
    tmp = tmp_path_factory.mktemp("study")
    result = invoke(*tune_args(tmp, 2, seeds=1))
    assert result.exit_code == 0, result.output
    return tmp / "tune" / "dqn-CartPole-v1"


def test_a_moved_study_keeps_its_own_journal_and_a_lost_or_damaged_one_is_one_line(finished_study, tmp_path):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(finished_study, moved)
    assert json.loads((moved / "tune.json").read_text())["storage"] == ""  # the default travels with the folder
    assert load_settings(moved).storage == str((moved / "study.journal").resolve())
    result = invoke("tune", "show", moved)
    assert result.exit_code == 0 and "] 2 trials: 2 complete" in result.output
    # the trial runs are ordinary run directories: plot and eval take them
    run_dir = next(p for p in (moved / "runs").iterdir() if not p.name.startswith("card-"))
    assert invoke("plot", moved / "runs", "-o", tmp_path / "c.png").exit_code == 0
    assert invoke("eval", run_dir, "--episodes", 2).exit_code == 0
    journal = moved / "study.journal"
    journal.write_text(journal.read_text() + '{"op_code": 5, "worker_id": "x", "trial_id": 0, "par\n')
    assert_one_line_error(invoke("tune", "show", moved), "damaged")
    journal.unlink()
    assert_one_line_error(invoke("tune", "show", moved), "journal", "missing")


def test_trial_runs_go_to_compare_and_a_published_copy_without_runs_still_shows(finished_study, tmp_path):
    """compare takes trial runs (grouped by the glob the report prints). A study published
    without its runs (results/tune-cards/) is read by `tune show`; before, the committed copies had no
    tune.json or journal and `tune show` refused them."""
    import shutil

    report = (finished_study / "report.md").read_text()
    glob_line = next(line for line in report.splitlines() if line.startswith("Its runs: `"))
    best = glob_line.split("`")[1]
    other = next(p for p in (finished_study / "runs").iterdir() if not p.match(best))
    result = invoke("compare", f"best={best}", f"other={other}", "-o", tmp_path / "best.md")
    assert result.exit_code == 0, result.output
    assert "| best |" in result.output and "| other |" in result.output
    copy = tmp_path / "published"
    copy.mkdir()
    for name in ("tune.json", "study.journal", "best.yaml"):
        shutil.copyfile(finished_study / name, copy / name)
    result = invoke("tune", "show", copy)
    assert result.exit_code == 0, result.output
    text = (copy / "report.md").read_text()
    assert "without its trial runs" in text and "## Best trial" in text
    assert not (copy / "tensorboard").exists() and "Its runs:" not in text


def test_a_resumed_study_does_not_replay_its_first_random_proposals(tmp_path):
    assert invoke(*tune_args(tmp_path, 1)).exit_code == 0
    assert invoke(*tune_args(tmp_path, 2)).exit_code == 0
    _, trials = study_of(tmp_path / "tune" / "dqn-CartPole-v1")
    assert trials[0].params != trials[1].params  # the second start draws new values, not the first again


def test_a_study_where_no_trial_completes_fails_in_one_line(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(runs, "train_members", boom)  # a trial's seeds train as one population
    result = invoke(*tune_args(tmp_path, 2))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "none of the 2 trials completed (first error: RuntimeError: boom" in result.output.strip().splitlines()[-1]
    assert result.output.count("failed: RuntimeError: boom") == 2  # each failure named once, in one line


def test_an_env_without_a_threshold_is_one_line(tmp_path):
    import tests.toy_envs  # noqa: F401 - registers the toy ids

    assert_one_line_error(invoke("tune", "dqn", "ConstantReward-v0", "--search", "lr={loguniform: [1e-4, 1e-2]}",
                                 "--out", tmp_path), "no solve threshold", "threshold:")


def test_pruning_reports_on_the_evaluation_grid(tmp_path, monkeypatch):
    """A PPO rollout of 400 steps passes the evaluation points 300, 600 at 400, 800: the trial
    reports at the points, so that trials with other rollout sizes are compared at the same steps."""
    space = tmp_path / "space.yaml"
    space.write_text("lr: {loguniform: [1.0e-4, 1.0e-2]}\n")
    result = invoke("tune", "ppo", "CartPole-v1", "--trials", 1, "--seeds", 2, "--steps", 1200, "--workers", 1,
                    "--space", space, "--out", tmp_path, "--no-reference", "--set", "num_envs=4", "--set", "n_steps=100",
                    "--set", "batch_size=100", "--set", "eval_every=300", "--set", "eval_episodes=2",
                    "--set", "final_eval_episodes=2")
    assert result.exit_code == 0, result.output
    _, trials = study_of(tmp_path / "tune" / "ppo-CartPole-v1")
    # evaluations at 400, 800, 1200 of both seeds (they train together): one report per point, once both reported
    assert sorted(trials[0].intermediate_values) == [300, 600, 1200]


def test_a_study_starts_from_the_current_card_when_the_space_can_express_it(tmp_path):
    space = tmp_path / "card-space.yaml"
    space.write_text("lr: {loguniform: [1.0e-4, 1.0e-2], anneal: true}\n")  # the card: lr {linear: [2.3e-3, 0]}
    args = tune_args(tmp_path, 1, seeds=1)
    args[args.index("--space") + 1] = space
    args.remove("--no-reference")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "trial 0 is the current card" in result.output
    tune_dir = tmp_path / "tune" / "dqn-CartPole-v1"
    _, trials = study_of(tune_dir)
    assert trials[0].params == {"lr": 2.3e-3} and trials[0].user_attrs["card"]
    assert not any(p.name.startswith("card-") for p in (tune_dir / "runs").iterdir())  # its runs are the reference
    report = (tune_dir / "report.md").read_text()
    assert "the current card" in report and f"Current card on the same seeds: objective {trials[0].value:.3f}" in report
    entry = yaml.safe_load((tune_dir / "best.yaml").read_text())["CartPole-v1"]
    assert entry["lr"] == {"linear": [2.3e-3, 0.0]}


@pytest.mark.parametrize("field,value,fragment", [
    ("threshold", "high", "threshold='high'"),
    ("floor", float("nan"), "floor=nan"),
    ("seeds", [], "seeds=[]"),
    ("steps", -5, "steps=-5"),
    ("pruner", "random", "pruner='random'"),
])
def test_an_edited_tune_json_is_refused_in_one_line(finished_study, tmp_path, field, value, fragment):
    """tune.json is a file anyone can edit: a threshold given as a string raised a TypeError traceback in
    `tune show`, and a NaN floor reached the report."""
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(finished_study, copy, ignore=shutil.ignore_patterns("runs", "tensorboard"))
    data = json.loads((copy / "tune.json").read_text())
    data[field] = value
    (copy / "tune.json").write_text(json.dumps(data))
    assert_one_line_error(invoke("tune", "show", copy), "damaged", fragment)


def test_tune_show_never_creates_the_storage_its_tune_json_names(finished_study, tmp_path):
    """An edited tune.json naming an SQLite file elsewhere made `tune show` create it."""
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(finished_study, copy, ignore=shutil.ignore_patterns("runs", "tensorboard"))
    data = json.loads((copy / "tune.json").read_text())
    data["storage"] = f"sqlite:///{tmp_path / 'elsewhere' / 'made.db'}"
    (copy / "tune.json").write_text(json.dumps(data))
    assert_one_line_error(invoke("tune", "show", copy), "missing")
    assert not (tmp_path / "elsewhere").exists()
